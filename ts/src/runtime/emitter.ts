import { AsyncQueue } from "../transport/queue.ts";
import type { DropReason } from "../protocol/wire.ts";
import type { Channel } from "../transport/transport.ts";

/** A line the runtime process wrote to stdout or stderr. */
export interface LogEvent {
  type: "log";
  stream: "stdout" | "stderr";
  line: string;
}

/** The runtime process exited (after close(), or a crash). */
export interface ExitEvent {
  type: "exit";
  code: number | null;
  signal: string | null;
  /** True when close() asked for it. */
  expected: boolean;
}

/** A received message failed authentication and was dropped. */
export interface DroppedEvent {
  type: "dropped";
  reason: DropReason;
  channel: Channel;
}

/** Something the user should know, e.g. that `transport: "auto"` fell back to pythonia. */
export interface RuntimeWarningEvent {
  type: "warning";
  message: string;
}

/**
 * The runtime stopped answering heartbeats: pending calls were rejected with
 * `RuntimeUnreachableError`, and new ones are until a `reachable` event.
 */
export interface UnreachableEvent {
  type: "unreachable";
  /** Heartbeats missed in a row. */
  missed: number;
}

/** The runtime answers heartbeats again after an `unreachable` event: calls work again. */
export interface ReachableEvent {
  type: "reachable";
  /** Milliseconds since the `unreachable` event. */
  afterMs: number;
}

/** Events of the runtime handle itself, discriminated on `type`. */
export type RuntimeLifecycleEvent = LogEvent | ExitEvent | DroppedEvent | RuntimeWarningEvent | UnreachableEvent | ReachableEvent;

type Listener<T extends RuntimeLifecycleEvent["type"]> = (e: Extract<RuntimeLifecycleEvent, { type: T }>) => void;

/** A small typed emitter with async-iterator subscribers. @internal */
export class LifecycleEmitter {
  private readonly listeners = new Map<string, Set<(e: RuntimeLifecycleEvent) => void>>();
  private readonly iterators = new Set<AsyncQueue<RuntimeLifecycleEvent>>();
  private ended = false;

  on<T extends RuntimeLifecycleEvent["type"]>(type: T, fn: Listener<T>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    const f = fn as (e: RuntimeLifecycleEvent) => void;
    set.add(f);
    return () => set.delete(f);
  }

  emit(e: RuntimeLifecycleEvent): void {
    for (const fn of this.listeners.get(e.type) ?? []) {
      try {
        fn(e);
      } catch {
        // A listener's failure must not break the runtime handle.
      }
    }
    for (const q of this.iterators) q.push(e);
  }

  iterate(): AsyncIterable<RuntimeLifecycleEvent> {
    const q = new AsyncQueue<RuntimeLifecycleEvent>();
    if (this.ended) q.end();
    else this.iterators.add(q);
    return q;
  }

  end(): void {
    this.ended = true;
    for (const q of this.iterators) q.end();
    this.iterators.clear();
  }
}
