import { describe, expect, it } from "vitest";
import { classKeysOf, classRecallSvg, coarseMembers, embeddingFigure, legendSvg, reportHtml, type ReportInput } from "./report.ts";
import { aggregate } from "./results.ts";
import type { RunRecord } from "./types.ts";

function record(sampler: string, baseline: boolean, seed: number, byClass: [number, number]): RunRecord {
  const fine = { "recall@1": (byClass[0] + byClass[1]) / 2, "recall@1/class=0": byClass[0], "recall@1/class=1": byClass[1] };
  return { id: `triplet__${sampler}__s${seed}`, lossId: "triplet", sampler, baseline, seed, config_sha256: "x", metrics: { coarse: { "recall@1": 0.95 }, fine }, steps: 1, elapsed_s: 0, wall_s: 0, samples_per_s: 0, device: "cpu", final_loss: null };
}

// Two coarse classes of two fine labels each: 0 = {0, 1}, 1 = {2, 3}.
const projection = { points: [0, 0, 1, 1, 2, 2, 3, 3], labels: [0, 0, 1, 1], fineLabels: [0, 1, 2, 3] };
const records = [0, 1, 2].flatMap((s) => [record("pml-miner", true, s, [0.8 + s * 0.01, 0.7]), record("nearest-positive", false, s, [0.9 + s * 0.01, 0.95])]);

function input(): ReportInput {
  const keys = classKeysOf(records.map((r) => r.metrics));
  return {
    suiteName: "t", description: "d", variants: aggregate(records), claims: [], curves: [], provenance: [],
    projections: { "triplet__pml-miner": { seed: 0, projection }, "triplet__nearest-positive": { seed: 0, projection } },
    byClass: { keys, variants: aggregate(records, keys) },
  };
}

describe("report figures", () => {
  it("finds the per-class keys in class order and the fine labels of each coarse class", () => {
    const sets = [{ coarse: {}, fine: { "recall@1/class=10": 1, "recall@1/class=2": 1, "recall@1": 1 } }];
    expect(classKeysOf(sets)).toEqual(["fine.recall@1/class=2", "fine.recall@1/class=10"]);
    expect([...coarseMembers(input().projections).entries()]).toEqual([[0, [0, 1]], [1, [2, 3]]]);
  });

  it("the embedding legend names each coarse class with the colours of its fine labels", () => {
    const { svg } = legendSvg(coarseMembers(input().projections), 600);
    expect(svg).toMatch(/class 0:<\/text><rect[^>]*fill="#1f77b4"\/><text[^>]*>0<\/text><rect[^>]*fill="#ff7f0e"\/><text[^>]*>1<\/text>/);
    expect(svg).toContain("class 1:");
    expect(embeddingFigure(input())).toContain("class 1:");
  });

  it("charts fine-label R@1 per coarse class, baseline first, with interval whiskers", () => {
    const svg = classRecallSvg(input(), "triplet");
    expect(svg).toContain("class 0 (fine 0, 1)");
    expect(svg).toContain("class 1 (fine 2, 3)");
    expect(svg.indexOf("pml-miner (baseline)")).toBeLessThan(svg.indexOf(">nearest-positive<"));
    // class 0 means: baseline 81.00, method 91.00; class 1: 70.00 and 95.00
    expect([...svg.matchAll(/font-size="10" font-family="sans-serif">([\d.]+)</g)].map((m) => m[1])).toEqual(["81.00", "91.00", "70.00", "95.00"]);
    expect(reportHtml(input())).toContain("Sub-clusters kept, per coarse class");
  });

  it("draws nothing per class without per-class metrics", () => {
    expect(classRecallSvg({ ...input(), byClass: undefined }, "triplet")).toBe("");
  });
});
