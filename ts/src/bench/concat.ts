/**
 * The MLRC "concatenated" embedding (Musgrave, Belongie, Lim 2020): the test split embedded by
 * each fold's selected model, every row L2-normalised per model, joined along the feature axis
 * (F models of d dimensions give F x d).
 * @internal
 */
import { Tensor } from "../tensor.ts";
import { sha256Of } from "./canonical.ts";
import type { RunSpec } from "./suite.ts";
import type { BenchBackend, Embedded, EvalOptions, RunRecord } from "./types.ts";

function sameLabels(a: Tensor, b: Tensor): boolean {
  if (a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}

/**
 * Joins the embeddings of the same samples by several models: each model's rows L2-normalised
 * (an all-zero row stays zero), then concatenated in the given order.
 * @throws Error when the parts are not N x d float32 of the same samples (same N, same labels)
 */
export function concatNormalized(parts: readonly Embedded[]): Embedded {
  if (parts.length === 0) throw new Error("concatenation: no embeddings given");
  const first = parts[0]!;
  const n = first.embeddings.shape[0] ?? 0;
  parts.forEach((p, i) => {
    const s = p.embeddings.shape;
    if (s.length !== 2 || p.embeddings.dtype !== "float32") throw new Error(`concatenation: part ${i} is ${p.embeddings.dtype} of shape [${s.join(", ")}], expected float32 N x d`);
    if (s[0] !== n) throw new Error(`concatenation: part ${i} has ${s[0]} rows, part 0 has ${n}`);
    // Every model must have embedded the same samples in the same order.
    if (!sameLabels(p.labels, first.labels)) throw new Error(`concatenation: part ${i} embedded other samples than part 0 (labels differ)`);
  });
  const dims = parts.map((p) => p.embeddings.shape[1]!);
  const total = dims.reduce((a, b) => a + b, 0);
  const out = new Float32Array(n * total);
  let offset = 0;
  parts.forEach((p, j) => {
    const d = dims[j]!;
    const x = p.embeddings.data as Float32Array;
    for (let r = 0; r < n; r++) {
      let sq = 0;
      for (let c = 0; c < d; c++) sq += x[r * d + c]! * x[r * d + c]!;
      const inv = sq > 0 ? 1 / Math.sqrt(sq) : 0;
      for (let c = 0; c < d; c++) out[r * total + offset + c] = x[r * d + c]! * inv;
    }
    offset += d;
  });
  return { embeddings: new Tensor("float32", [n, total], out), labels: first.labels, ...(first.fineLabels ? { fineLabels: first.fineLabels } : {}) };
}

/** The `evaluate` settings a train config's evaluation used (`eval.ks`, `eval.nmi`, `eval.chunk_size`, `seed`). */
export function evalOptionsOf(train: Record<string, unknown>): EvalOptions {
  const e = (train.eval ?? {}) as Record<string, unknown>;
  const o: EvalOptions = {};
  if (Array.isArray(e.ks)) o.ks = e.ks.map(Number);
  if (typeof e.nmi === "boolean") o.nmi = e.nmi;
  if (typeof e.chunk_size === "number") o.chunk_size = e.chunk_size;
  if (typeof train.seed === "number") o.seed = train.seed;
  return o;
}

/** The split a train config evaluates on (`eval.split`, default "test"). */
export function evalSplitOf(train: Record<string, unknown>): string {
  const split = (train.eval as Record<string, unknown> | undefined)?.split;
  return typeof split === "string" ? split : "test";
}

/** A fold run's trained model, held until its group's last fold is done. */
export interface FoldMember {
  run: RunSpec;
  model: string;
  record: RunRecord;
}

/** Id of a fold group's concatenated record (its folder under runs/). */
export function concatRunId(group: string): string {
  return `${group}__concat`;
}

/** Config hash of a concatenated record: that of its folds' train configs, in fold order. */
export function concatSha(folds: readonly RunSpec[]): string {
  return sha256Of(folds.map((f) => f.train));
}

/**
 * Embeds the eval split with each fold's selected model, joins the L2-normalised embeddings
 * (F x d) and evaluates the join with the folds' evaluation settings.
 */
export async function concatenatedRecord(backend: BenchBackend, group: string, members: readonly FoldMember[]): Promise<RunRecord> {
  const t0 = performance.now();
  const parts = [];
  for (const m of members) parts.push(await backend.embed(m.model, m.run.train.data, evalSplitOf(m.run.train)));
  const joined = concatNormalized(parts);
  const first = members[0]!;
  const metrics = await backend.evaluateEmbeddings(joined, evalOptionsOf(first.run.train));
  const recs = members.map((m) => m.record);
  const sum = (f: (x: RunRecord) => number) => recs.reduce((a, x) => a + f(x), 0);
  return {
    id: concatRunId(group),
    lossId: first.run.lossId,
    sampler: first.run.sampler,
    baseline: first.run.baseline,
    seed: first.run.seed,
    config_sha256: concatSha(members.map((m) => m.run)),
    metrics,
    steps: sum((x) => x.steps),
    elapsed_s: sum((x) => x.elapsed_s),
    wall_s: sum((x) => x.wall_s) + (performance.now() - t0) / 1000,
    samples_per_s: sum((x) => x.samples_per_s) / recs.length,
    device: first.record.device,
    final_loss: null,
    folds: members.length,
    concatenated: { folds: members.length, fold_dim: parts[0]!.embeddings.shape[1]!, dim: joined.embeddings.shape[1]! },
  };
}
