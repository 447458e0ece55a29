/**
 * The liveness watch of a runtime handle: heartbeats on the control channel.
 * @internal
 */

/** What the watch needs from its handle. */
export interface WatchHooks {
  /** Sends a heartbeat; rejects when it is not answered within `timeoutMs`. */
  heartbeat(timeoutMs: number): Promise<unknown>;
  /** True once the handle was closed or the runtime exited: the watch then ends. */
  ended(): boolean;
  /** `misses` heartbeats in a row went unanswered. */
  onUnreachable(misses: number): void;
  /** The first answer after {@link onUnreachable}. */
  onReachable(): void;
}

/**
 * One heartbeat at a time, each given `intervalMs`; the next goes out `intervalMs` after the
 * previous one was sent. After `misses` in a row the runtime counts as unreachable, and the
 * watch goes on probing: the first answer after that makes the handle usable again. Unref'd
 * timers: the watch never keeps Node alive on its own. It ends with {@link stop}, or once
 * `hooks.ended()`.
 */
export class Watch {
  private timer: NodeJS.Timeout | undefined;
  private missed = 0;
  private unreachable = false;

  constructor(
    private readonly hooks: WatchHooks,
    private readonly intervalMs: number,
    private readonly misses: number,
  ) {
    if (intervalMs > 0) this.schedule(intervalMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delay: number): void {
    this.timer = setTimeout(() => void this.tick(), delay);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    if (this.hooks.ended()) return;
    const sent = Date.now();
    try {
      await this.hooks.heartbeat(this.intervalMs);
      this.missed = 0;
      if (this.unreachable) {
        this.unreachable = false;
        this.hooks.onReachable();
      }
    } catch {
      if (this.hooks.ended()) return;
      this.missed++;
      if (this.missed >= this.misses && !this.unreachable) {
        this.unreachable = true;
        this.hooks.onUnreachable(this.misses);
      }
    }
    this.schedule(Math.max(0, this.intervalMs - (Date.now() - sent)));
  }
}
