import { describe, expect, it } from "vitest";
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

const WINDOW = 1000;

function guard(maxIds = 1_000_000): { g: ReplayGuard; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  return { g: new ReplayGuard(WINDOW, () => clock.t, maxIds), clock };
}
const at = (ms: number): string => new Date(ms).toISOString();

describe("ReplayGuard", () => {
  it("forgets an id once its date has left the window, not before", () => {
    const { g, clock } = guard();
    const sent = clock.t + WINDOW; // dated one window ahead: valid until two windows from now
    expect(g.accept("ahead", at(sent))).toBe(true);
    clock.t += 2 * WINDOW;
    expect(g.accept("ahead", at(sent))).toBe(false); // still inside its window: a replay
    clock.t += 1;
    expect(g.accept("x", at(clock.t))).toBe(true);
    expect(g.size).toBe(1); // "ahead" expired: its date alone refuses it now
    expect(g.accept("ahead", at(sent))).toBe(false);
  });

  it("keeps at most maxIds ids, and refuses a forgotten id replayed inside the window", () => {
    const { g, clock } = guard(3);
    for (let i = 0; i < 10; i++) expect(g.accept(`m${i}`, at(clock.t + i))).toBe(true);
    expect(g.size).toBe(3);
    // m0..m6 were forgotten: their dates are at or below the floor.
    expect(g.accept("m0", at(clock.t))).toBe(false);
    expect(g.accept("m6", at(clock.t + 6))).toBe(false);
    expect(g.accept("m9", at(clock.t + 9))).toBe(false); // remembered
    expect(g.accept("new", at(clock.t + 7))).toBe(true); // above the floor
    expect(g.size).toBe(3);
  });
});
