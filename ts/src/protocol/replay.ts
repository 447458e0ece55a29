/** How far a message's `date` may be from the receiver's clock (docs/protocol.md). */
export const REPLAY_WINDOW_MS = 5 * 60 * 1000;

/** Most msg_ids remembered at once (as the runtime's guard, protocol/replay.py). */
export const MAX_REPLAY_IDS = 1_000_000;

/**
 * Remembers the `msg_id`s received, each for as long as its date could still pass the date
 * check (up to one window after that date): a captured message sent again is refused.
 *
 * Memory is bounded: past `maxIds` ids, the oldest are forgotten and every date up to the
 * newest forgotten one is refused from then on (the floor), so a forgotten id cannot pass
 * again.
 */
export class ReplayGuard {
  /** msg_id -> its date (ms), in arrival order. */
  private readonly seen = new Map<string, number>();
  /** Dates at or before this are refused (ids of that age were forgotten). */
  private floor = Number.NEGATIVE_INFINITY;
  /** Date of the first id kept (Infinity: none): nothing to expire before it leaves the window. */
  private oldest = Number.POSITIVE_INFINITY;

  constructor(
    private readonly windowMs = REPLAY_WINDOW_MS,
    private readonly now: () => number = Date.now,
    private readonly maxIds = MAX_REPLAY_IDS,
  ) {}

  /**
   * True (and the id is recorded) when the message is fresh; false when replayed, out of
   * the window, or no newer than the ids forgotten to keep memory bounded.
   * @param parsed - `Date.parse(date)`, when the caller has it already
   */
  accept(msgId: string, date: string, parsed?: number): boolean {
    const now = this.now();
    const t = parsed ?? Date.parse(date);
    if (!Number.isFinite(t) || Math.abs(now - t) > this.windowMs) return false;
    if (this.oldest < now - this.windowMs) this.expire(now);
    if (this.seen.has(msgId) || t <= this.floor) return false;
    if (this.seen.size === 0) this.oldest = t;
    this.seen.set(msgId, t);
    if (this.seen.size > this.maxIds) this.forgetOldest();
    return true;
  }

  /** Number of ids remembered. */
  get size(): number {
    return this.seen.size;
  }

  private forgetOldest(): void {
    for (const [id, at] of this.seen) {
      if (this.seen.size <= this.maxIds) break;
      this.seen.delete(id);
      this.floor = Math.max(this.floor, at);
    }
    this.oldest = this.seen.values().next().value ?? Number.POSITIVE_INFINITY;
  }

  private expire(now: number): void {
    // Arrival order tracks date order closely: stop at the first id still inside the
    // window (a few stragglers may live a little longer).
    for (const [id, at] of this.seen) {
      if (at >= now - this.windowMs) {
        this.oldest = at;
        return;
      }
      this.seen.delete(id);
    }
    this.oldest = Number.POSITIVE_INFINITY;
  }
}
