/** How far a message's `date` may be from the receiver's clock (docs/protocol.md). */
export const REPLAY_WINDOW_MS = 5 * 60 * 1000;

/**
 * Remembers the `msg_id`s received in the replay window, so a captured message sent again
 * is refused. Ids are kept for twice the window (a date may be up to one window ahead).
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();
  /** Arrival time of the oldest id kept (Infinity: none): nothing to prune before it expires. */
  private oldest = Number.POSITIVE_INFINITY;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(windowMs = REPLAY_WINDOW_MS, now: () => number = Date.now) {
    this.windowMs = windowMs;
    this.now = now;
  }

  /**
   * True (and the id is recorded) when the message is fresh; false when replayed or out of the window.
   * @param parsed - `Date.parse(date)`, when the caller has it already
   */
  accept(msgId: string, date: string, parsed?: number): boolean {
    const now = this.now();
    const t = parsed ?? Date.parse(date);
    if (!Number.isFinite(t) || Math.abs(now - t) > this.windowMs) return false;
    if (now - this.oldest > 2 * this.windowMs) this.prune(now);
    if (this.seen.has(msgId)) return false;
    if (this.seen.size === 0) this.oldest = now;
    this.seen.set(msgId, now);
    return true;
  }

  /** Number of ids remembered. */
  get size(): number {
    return this.seen.size;
  }

  private prune(now: number): void {
    // Insertion order is arrival order: stop at the first id still inside the horizon.
    for (const [id, at] of this.seen) {
      if (now - at <= 2 * this.windowMs) {
        this.oldest = at;
        return;
      }
      this.seen.delete(id);
    }
    this.oldest = Number.POSITIVE_INFINITY;
  }
}
