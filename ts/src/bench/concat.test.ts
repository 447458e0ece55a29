import { describe, expect, it } from "vitest";
import { Tensor } from "../tensor.ts";
import { concatNormalized, evalOptionsOf, evalSplitOf } from "./concat.ts";
import type { Embedded } from "./types.ts";

const part = (rows: number[][], labels: number[]): Embedded => ({
  embeddings: new Tensor("float32", [rows.length, rows[0]!.length], Float32Array.from(rows.flat())),
  labels: new Tensor("int64", [labels.length], BigInt64Array.from(labels.map(BigInt))),
});

describe("concatNormalized", () => {
  it("L2-normalises each model's rows, then joins them along the feature axis", () => {
    const a = part([[3, 4], [0, 2]], [0, 1]);
    const b = part([[1, 0, 0], [0, 0, -5]], [0, 1]);
    const j = concatNormalized([a, b]);
    expect(j.embeddings.shape).toEqual([2, 5]);
    expect(Array.from(j.embeddings.data as Float32Array)).toEqual([0.6, 0.8, 1, 0, 0, 0, 1, 0, 0, -1].map(Math.fround));
    expect(j.labels).toBe(a.labels);
  });

  it("keeps an all-zero row zero", () => {
    const j = concatNormalized([part([[0, 0]], [3]), part([[2]], [3])]);
    expect(Array.from(j.embeddings.data as Float32Array)).toEqual([0, 0, 1]);
  });

  it("refuses parts of other samples, other row counts and nothing at all", () => {
    expect(() => concatNormalized([part([[1], [1]], [0, 1]), part([[1], [1]], [1, 0])])).toThrow(/part 1 embedded other samples/);
    expect(() => concatNormalized([part([[1], [1]], [0, 1]), part([[1]], [0])])).toThrow(/part 1 has 1 rows, part 0 has 2/);
    expect(() => concatNormalized([])).toThrow(/no embeddings/);
  });
});

describe("evaluation settings of a train config", () => {
  it("takes ks, nmi, chunk_size from eval and the seed; the split defaults to test", () => {
    expect(evalOptionsOf({ seed: 3, eval: { split: "val", ks: [1, 4], nmi: false, chunk_size: 64, batch_size: 9 } })).toEqual({ ks: [1, 4], nmi: false, chunk_size: 64, seed: 3 });
    expect(evalOptionsOf({})).toEqual({});
    expect(evalSplitOf({ eval: { split: "val" } })).toBe("val");
    expect(evalSplitOf({})).toBe("test");
  });
});
