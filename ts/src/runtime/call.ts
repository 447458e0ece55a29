import type { RuntimeEvent } from "../protocol/messages.ts";
import { AsyncQueue } from "../transport/queue.ts";

/**
 * A call in flight: its events as an async iterable and its result as a promise.
 *
 * `events` has one consumer; it yields events in `seq` order and ends when the call ends
 * (result, error or cancellation). Events not consumed are buffered. `result` rejects with a
 * NearposError (PythonError, CancelledError, TimeoutError, RuntimeExitedError ...).
 */
export interface Call<T = unknown, E = RuntimeEvent> {
  /** msg_id of the call_request; the runtime's `running` list and cancel use it. */
  readonly id: string;
  /** The method called. */
  readonly method: string;
  /** Events of the call, in order, ending with the call. */
  readonly events: AsyncIterable<E>;
  /** The call's result. */
  readonly result: Promise<T>;
}

/** Orders events by seq and settles the result. @internal */
export class CallState<T = unknown> implements Call<T> {
  readonly id: string;
  readonly method: string;
  readonly result: Promise<T>;
  settled = false;
  private nextSeq = 0;
  // Made on first use: most calls have no events and no reader of them.
  private queue: AsyncQueue<RuntimeEvent> | undefined;
  private early: Map<number, RuntimeEvent> | undefined;
  private resolveFn!: (v: T) => void;
  private rejectFn!: (e: unknown) => void;
  private readonly onEvent: ((e: RuntimeEvent) => void) | undefined;
  private cleanups: (() => void)[] | undefined;
  private readonly onDone: ((id: string) => void) | undefined;

  /** @param onDone - called with the call's id once it settles, before {@link onSettle}'s functions */
  constructor(id: string, method: string, onEvent?: (e: RuntimeEvent) => void, onDone?: (id: string) => void) {
    this.id = id;
    this.method = method;
    this.onEvent = onEvent;
    this.onDone = onDone;
    this.result = new Promise<T>((res, rej) => {
      this.resolveFn = res;
      this.rejectFn = rej;
    });
    // Callers that only iterate events must not see an unhandled rejection.
    this.result.catch(() => undefined);
  }

  /** Events of the call, in order; ends with the call (events that came before are kept). */
  get events(): AsyncQueue<RuntimeEvent> {
    if (!this.queue) {
      this.queue = new AsyncQueue<RuntimeEvent>();
      if (this.settled) this.queue.end();
    }
    return this.queue;
  }

  /** Registers a function run once the call settles. */
  onSettle(fn: () => void): void {
    if (this.settled) fn();
    else (this.cleanups ??= []).push(fn);
  }

  event(e: RuntimeEvent): void {
    if (this.settled) return;
    if (e.seq === this.nextSeq || !Number.isSafeInteger(e.seq)) {
      this.deliver(e);
      const early = this.early;
      if (early) {
        for (let n = early.get(this.nextSeq); n; n = early.get(this.nextSeq)) {
          early.delete(this.nextSeq);
          this.deliver(n);
        }
      }
    } else if (e.seq > this.nextSeq) {
      (this.early ??= new Map()).set(e.seq, e);
    }
  }

  resolve(v: T): void {
    if (this.finish()) this.resolveFn(v);
  }

  reject(err: unknown): void {
    if (this.finish()) this.rejectFn(err);
  }

  private deliver(e: RuntimeEvent): void {
    if (Number.isSafeInteger(e.seq)) this.nextSeq = e.seq + 1;
    this.events.push(e);
    try {
      this.onEvent?.(e);
    } catch {
      // A listener's failure must not break the call.
    }
  }

  private finish(): boolean {
    if (this.settled) return false;
    const early = this.early;
    if (early && early.size > 0) {
      // Gaps can only come from a broken peer; hand on what arrived, in order.
      for (const seq of [...early.keys()].sort((a, b) => a - b)) this.deliver(early.get(seq) as RuntimeEvent);
      early.clear();
    }
    this.settled = true;
    this.queue?.end();
    this.onDone?.(this.id);
    const cleanups = this.cleanups;
    this.cleanups = undefined;
    if (cleanups) for (const fn of cleanups) fn();
    return true;
  }
}
