import { expect, it } from "vitest";
import { REPLAY_WINDOW_MS, ReplayGuard } from "./replay.ts";

it("accepts each id once, inside the window, and forgets old ids", () => {
  let now = Date.parse("2026-01-01T00:00:00.000Z");
  const g = new ReplayGuard(REPLAY_WINDOW_MS, () => now);
  const iso = (t: number) => new Date(t).toISOString();
  expect(g.accept("a", iso(now))).toBe(true);
  expect(g.accept("a", iso(now))).toBe(false);
  expect(g.accept("b", iso(now - REPLAY_WINDOW_MS - 1))).toBe(false);
  expect(g.accept("c", iso(now + REPLAY_WINDOW_MS - 1))).toBe(true);
  expect(g.accept("d", "not a date")).toBe(false);
  now += 3 * REPLAY_WINDOW_MS;
  expect(g.accept("e", iso(now))).toBe(true);
  expect(g.size).toBe(1);
});
