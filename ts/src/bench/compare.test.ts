import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeJsonAtomic } from "./atomic.ts";
import { compareResults, comparisonTable } from "./compare.ts";
import { claimLines } from "./report.ts";
import { aggregate, checkClaim } from "./results.ts";
import type { RunRecord } from "./types.ts";

const dir = mkdtempSync(join(tmpdir(), "nearpos-compare-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function record(lossId: string, sampler: string, baseline: boolean, seed: number, coarse: number, fine: number): RunRecord {
  return { id: `${lossId}__${sampler}__s${seed}`, lossId, sampler, baseline, seed, config_sha256: "x", metrics: { coarse: { "recall@1": coarse, "map@r": coarse, nmi: coarse }, fine: { "recall@1": fine } }, steps: 1, elapsed_s: 0, wall_s: 0, samples_per_s: 0, device: "cpu", final_loss: null };
}

function folder(name: string, fine: number[]): string {
  const records = fine.map((f, i) => record("triplet", "nearest-positive", false, i, 0.9, f));
  const variants = aggregate(records);
  const out = join(dir, name);
  writeJsonAtomic(join(out, "results.json"), { suite: "t", config_sha256: name, runs: records, summary: variants.map((v) => ({ loss: v.lossId, sampler: v.sampler, baseline: v.baseline, seeds: v.seeds, stats: v.stats, values: v.values })) });
  return out;
}

describe("bench compare", () => {
  it("gives Welch's difference and interval per metric (scipy reference values)", () => {
    const c = compareResults(folder("a", [0.81, 0.84, 0.79]), folder("b", [0.88, 0.86, 0.91, 0.87]));
    const row = c.rows.find((r) => r.metric === "fine.recall@1")!;
    expect(row.diff.low).toBeCloseTo(0.01642860573778531, 8);
    expect(row.diff.high).toBeCloseTo(0.11690472759554799, 8);
    expect(row.diff.p).toBeCloseTo(0.02110795988958263, 8);
    expect(comparisonTable(c)).toMatch(/triplet \/ nearest-positive\s+fine\.recall@1\s+81\.33 ± [\d.]+\s+88\.00 ± [\d.]+\s+\+6\.67 \[1\.64, 11\.69\]\s+0\.021/);
  });

  it("refuses a folder without results.json", () => {
    expect(() => compareResults(join(dir, "none"), join(dir, "a"))).toThrow(/no results\.json/);
  });
});

describe("claim check", () => {
  const recs = [0, 1, 2].flatMap((s) => [record("triplet", "semihard", true, s, 0.95 + s * 0.001, 0.85 + s * 0.002), record("triplet", "nearest-positive", false, s, 0.95 + s * 0.001, 0.9 + s * 0.002)]);
  const claim = { method: "nearest-positive", losses: ["triplet"], metric: "fine.recall@1", min_gain: 0.03, guard: "coarse.recall@1" };

  it("holds when the paired gain is large enough, its interval above 0 and the guard kept", () => {
    const [v] = checkClaim(claim, aggregate(recs));
    expect(v!.held).toBe(true);
    expect(v!.gain.diff.mean).toBeCloseTo(0.05, 12);
    expect(v!.gain.seeds).toEqual([0, 1, 2]);
    expect(v!.guard!.kept).toBe(true);
    expect(v!.reasons).toEqual([]);
    expect(claimLines([v!])[0]).toMatch(/^HELD: triplet: nearest-positive vs semihard, fine\.recall@1 90\.20 vs 85\.20 \(paired gain over 3 seeds \+5\.00 \[5\.00, 5\.00\] points, required 3\.00\)/);
  });

  it("says why it did not hold", () => {
    const [v] = checkClaim({ ...claim, min_gain: 0.1 }, aggregate(recs));
    expect(v!.held).toBe(false);
    expect(v!.reasons.join(" ")).toMatch(/paired gain 5\.00 points is below the required 10\.00/);
  });

  it("pairs by seed: a consistent gain holds though the seeds spread widely", () => {
    // Seeds differ by 10 points, the method gains 4 on each: unpaired intervals overlap widely.
    const wide = [0, 1, 2].flatMap((s) => [record("triplet", "semihard", true, s, 0.95, 0.7 + s * 0.1 + (s === 1 ? 0.005 : 0)), record("triplet", "nearest-positive", false, s, 0.95, 0.74 + s * 0.1)]);
    const [v] = checkClaim(claim, aggregate(wide));
    expect(v!.held).toBe(true);
    expect(v!.gain.diff.low).toBeGreaterThan(0);
  });

  it("does not hold when the paired differences disagree in sign, though the mean gain is large", () => {
    const noisy = [0, 1, 2].flatMap((s) => [record("triplet", "semihard", true, s, 0.95, 0.8), record("triplet", "nearest-positive", false, s, 0.95, [0.95, 0.78, 0.92][s]!)]);
    const [v] = checkClaim(claim, aggregate(noisy));
    expect(v!.gain.diff.mean).toBeGreaterThan(0.03);
    expect(v!.held).toBe(false);
    expect(v!.reasons.join(" ")).toMatch(/95% interval of the paired gain \[-?[\d.]+, [\d.]+\] does not exclude 0/);
  });

  it("pairs only the seeds both ran, and reports a lost guard", () => {
    const recs2 = [
      ...[0, 1, 2].map((s) => record("triplet", "semihard", true, s, 0.95 + s * 0.01, 0.8)),
      ...[1, 2, 3].map((s) => record("triplet", "nearest-positive", false, s, 0.9 + s * 0.01 - 0.001 * s, 0.9)),
    ];
    const [v] = checkClaim(claim, aggregate(recs2));
    expect(v!.gain.seeds).toEqual([1, 2]);
    expect(v!.guard!.kept).toBe(false);
    expect(v!.reasons.join(" ")).toMatch(/coarse\.recall@1 lost: paired difference/);
  });
});
