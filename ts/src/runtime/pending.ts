/**
 * What a runtime handle waits for: calls by id, control requests by id, and which calls were
 * aborted or lost while the runtime was unreachable.
 * @internal
 */
import { CancelledError, type NearposError } from "../errors.ts";
import type { CallState } from "./call.ts";

/** A control request (hello, heartbeat, cancel, shutdown) waiting for its reply. */
export interface ControlWaiter {
  resolve: (content: Record<string, unknown>) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

/** The pending calls and control requests of one runtime handle. @internal */
export class Pending {
  readonly calls = new Map<string, CallState<unknown>>();
  /** Calls whose signal was aborted: when the runtime goes away they end as cancelled. */
  readonly aborted = new Set<string>();
  readonly control = new Map<string, ControlWaiter>();
  /** Calls rejected as unreachable: cancelled in the runtime once it answers again. */
  readonly lost = new Set<string>();
  /** Every settled call leaves the tables (one function for all calls, not one per call). */
  readonly forget = (id: string): void => {
    this.calls.delete(id);
    this.aborted.delete(id);
  };

  /** Calls and control requests in flight. */
  get size(): number {
    return this.calls.size + this.control.size;
  }

  /** Removes and returns the control request `id`, its timer stopped. */
  takeControl(id: string): ControlWaiter | undefined {
    const w = this.control.get(id);
    if (w) {
      this.control.delete(id);
      clearTimeout(w.timer);
    }
    return w;
  }

  /** Rejects every control request with `err`. */
  rejectControl(err: unknown): void {
    for (const id of [...this.control.keys()]) this.takeControl(id)?.reject(err);
  }

  /**
   * Rejects every call with `err` (an aborted one with CancelledError, caused by `err`) and,
   * unless `control` is false, every control request: the one way of ending what waits when
   * the runtime exits, is closed or stops answering.
   */
  rejectAll(err: NearposError, control = true): void {
    for (const call of [...this.calls.values()]) {
      call.reject(this.aborted.has(call.id) ? new CancelledError(`${call.method} was cancelled (the runtime is gone)`, { cause: err }) : err);
    }
    if (control) this.rejectControl(err);
  }
}
