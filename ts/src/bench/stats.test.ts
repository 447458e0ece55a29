import { describe, expect, it } from "vitest";
import { pairedDifference, studentTCdf, studentTQuantile, tInterval, welch } from "./stats.ts";

// Reference values: two-sided 95% critical values of Student's t from standard tables
// (and scipy.stats.t.ppf(0.975, df)); Welch example checked with scipy.stats.ttest_ind.
describe("Student t", () => {
  it.each([
    [1, 12.706204736174694],
    [2, 4.302652729749462],
    [4, 2.7764451051977934],
    [10, 2.228138851986274],
    [30, 2.0422724563012378],
  ])("quantile 0.975 with df=%i", (df, q) => {
    expect(studentTQuantile(0.975, df)).toBeCloseTo(q, 9);
    expect(studentTQuantile(0.025, df)).toBeCloseTo(-q, 9);
    expect(studentTCdf(q, df)).toBeCloseTo(0.975, 12);
  });

  it("approaches the normal for large df", () => {
    expect(studentTQuantile(0.975, 1e7)).toBeCloseTo(1.959964, 5);
  });

  it("rejects bad arguments", () => {
    expect(() => studentTQuantile(1.2, 3)).toThrow(RangeError);
    expect(() => studentTQuantile(0.9, 0)).toThrow(RangeError);
  });
});

describe("tInterval", () => {
  it("matches mean +- t * sd / sqrt(n)", () => {
    const s = tInterval([0.9, 0.92, 0.95]);
    expect(s.mean).toBeCloseTo(0.9233333333333333, 12);
    expect(s.halfWidth).toBeCloseTo(0.06251609479375765, 10);
    expect(s.low).toBeCloseTo(s.mean - s.halfWidth, 12);
  });
  it("gives no interval from one seed", () => {
    const s = tInterval([0.5]);
    expect(s.mean).toBe(0.5);
    expect(Number.isNaN(s.halfWidth)).toBe(true);
  });
});

describe("welch", () => {
  it("matches scipy's Welch test", () => {
    const r = welch([0.81, 0.84, 0.79], [0.88, 0.86, 0.91, 0.87]);
    expect(r.t).toBeCloseTo(3.682298471593295, 8);
    expect(r.df).toBeCloseTo(4.005753739930963, 8);
    expect(r.p).toBeCloseTo(0.02110795988958263, 8);
    expect(r.low).toBeCloseTo(0.01642860573778531, 8);
    expect(r.high).toBeCloseTo(0.11690472759554799, 8);
  });
  it("handles identical constant groups", () => {
    const r = welch([1, 1], [1, 1]);
    expect(r.diff).toBe(0);
    expect(r.p).toBe(1);
  });
});

describe("pairedDifference", () => {
  it("is the t interval of the per-seed differences (b - a)", () => {
    // differences 0.05, 0.03, 0.07: mean 0.05, sd 0.02, half-width t(0.975, 2) * 0.02 / sqrt(3)
    const r = pairedDifference([0.8, 0.9, 0.7], [0.85, 0.93, 0.77]);
    expect(r.n).toBe(3);
    expect(r.mean).toBeCloseTo(0.05, 12);
    expect(r.halfWidth).toBeCloseTo(0.04968275423500663, 9);
    expect(r.low).toBeGreaterThan(0);
  });

  it("removes the spread the pairs share, where the unpaired intervals overlap", () => {
    const a = [0.7, 0.8, 0.9];
    const b = [0.73, 0.83, 0.93];
    expect(tInterval(b).low).toBeLessThan(tInterval(a).high);
    const r = pairedDifference(a, b);
    expect(r.mean).toBeCloseTo(0.03, 12);
    expect(r.halfWidth).toBeCloseTo(0, 9);
  });

  it("refuses samples of different lengths", () => {
    expect(() => pairedDifference([1, 2], [1])).toThrow(/equal lengths, got 2 and 1/);
  });
});
