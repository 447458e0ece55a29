import type { RuntimeEvent } from "../protocol/messages.ts";
import { AsyncQueue } from "../transport/queue.ts";

/**
 * A call in flight: its events as an async iterable and its result as a promise.
 *
 * `events` has one consumer; it yields events in `seq` order and ends when the call ends
 * (result, error or cancellation). Events not consumed are buffered. `result` rejects with a
 * NearposError (PythonError, CancelledError, TimeoutError, RuntimeExitedError ...).
 */
export interface Call<T = unknown> {
  /** msg_id of the call_request; the runtime's `running` list and cancel use it. */
  readonly id: string;
  /** The method called. */
  readonly method: string;
  /** Events of the call, in order, ending with the call. */
  readonly events: AsyncIterable<RuntimeEvent>;
  /** The call's result. */
  readonly result: Promise<T>;
}

/** Orders events by seq and settles the result. @internal */
export class CallState<T = unknown> implements Call<T> {
  readonly id: string;
  readonly method: string;
  readonly result: Promise<T>;
  readonly events: AsyncQueue<RuntimeEvent>;
  settled = false;
  private nextSeq = 0;
  private readonly early = new Map<number, RuntimeEvent>();
  private resolveFn!: (v: T) => void;
  private rejectFn!: (e: unknown) => void;
  private readonly onEvent: ((e: RuntimeEvent) => void) | undefined;
  private readonly cleanups: (() => void)[] = [];

  constructor(id: string, method: string, onEvent?: (e: RuntimeEvent) => void) {
    this.id = id;
    this.method = method;
    this.onEvent = onEvent;
    this.events = new AsyncQueue<RuntimeEvent>();
    this.result = new Promise<T>((res, rej) => {
      this.resolveFn = res;
      this.rejectFn = rej;
    });
    // Callers that only iterate events must not see an unhandled rejection.
    this.result.catch(() => undefined);
  }

  /** Registers a function run once the call settles. */
  onSettle(fn: () => void): void {
    if (this.settled) fn();
    else this.cleanups.push(fn);
  }

  event(e: RuntimeEvent): void {
    if (this.settled) return;
    if (e.seq === this.nextSeq || !Number.isSafeInteger(e.seq)) {
      this.deliver(e);
      for (let n = this.early.get(this.nextSeq); n; n = this.early.get(this.nextSeq)) {
        this.early.delete(this.nextSeq);
        this.deliver(n);
      }
    } else if (e.seq > this.nextSeq) {
      this.early.set(e.seq, e);
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
    // Gaps can only come from a broken peer; hand on what arrived, in order.
    for (const seq of [...this.early.keys()].sort((a, b) => a - b)) this.deliver(this.early.get(seq) as RuntimeEvent);
    this.early.clear();
    this.settled = true;
    this.events.end();
    for (const fn of this.cleanups.splice(0)) fn();
    return true;
  }
}
