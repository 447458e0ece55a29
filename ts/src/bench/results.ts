/**
 * Aggregation of finished runs: mean and 95% t-interval over seeds per (loss, sampler), the
 * summary table with the best value per column marked, and the check of the method's claim
 * computed from those numbers.
 * @internal
 */
import { foldGroupOf, type Claim } from "./suite.ts";
import { pairedDifference, tInterval, type Summary } from "./stats.ts";
import type { Metrics, RunRecord } from "./types.ts";

/** A column of the summary table: "<coarse|fine>.<metric name>". */
export interface Column {
  key: string;
  title: string;
}

/** Columns of the summary (method.md section 5): coarse R@1, MAP@R, NMI and fine R@1. */
export const SUMMARY_COLUMNS: readonly Column[] = [
  { key: "coarse.recall@1", title: "R@1" },
  { key: "coarse.map@r", title: "MAP@R" },
  { key: "coarse.nmi", title: "NMI" },
  { key: "fine.recall@1", title: "fine R@1" },
  { key: "fine.nmi", title: "fine NMI" },
];

/** Value of "coarse.recall@1"-style key in a metric set; undefined when absent. */
export function metricValue(m: Metrics, key: string): number | undefined {
  const dot = key.indexOf(".");
  const group = key.slice(0, dot) as "coarse" | "fine";
  const v = m[group]?.[key.slice(dot + 1)];
  return typeof v === "number" ? v : undefined;
}

/**
 * Cross-validation: replaces the per-fold records of each (loss, sampler, seed) by one record
 * whose metrics are the mean over its folds of each fold's selected model (a metric missing in
 * any fold is left out). Records without a fold pass through unchanged, in order.
 */
export function averageFolds(records: readonly RunRecord[]): RunRecord[] {
  const out: RunRecord[] = [];
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    if (r.fold === undefined) {
      out.push(r);
      continue;
    }
    const key = foldGroupOf(r.id);
    const g = groups.get(key);
    if (g) g.push(r);
    else {
      const fresh = [r];
      groups.set(key, fresh);
      out.push({ ...r, id: key }); // placeholder at the group's first position
    }
  }
  return out.map((r) => {
    const folds = groups.get(r.id);
    if (!folds || r.fold === undefined) return r;
    const metrics: Metrics = { coarse: {} };
    for (const group of ["coarse", "fine"] as const) {
      const names = Object.keys(folds[0]!.metrics[group] ?? {});
      const mean: Record<string, number> = {};
      for (const n of names) {
        const xs = folds.map((f) => f.metrics[group]?.[n]);
        if (xs.every((x): x is number => typeof x === "number")) mean[n] = xs.reduce((a, b) => a + b, 0) / xs.length;
      }
      if (group === "coarse") metrics.coarse = mean;
      else if (names.length > 0) metrics.fine = mean;
    }
    const sum = (f: (x: RunRecord) => number) => folds.reduce((a, x) => a + f(x), 0);
    const { fold: _fold, best_step: _b, best_val_metrics: _v, ...rest } = r;
    return {
      ...rest,
      id: r.id,
      config_sha256: folds.map((f) => f.config_sha256).join(","),
      metrics,
      folds: folds.length,
      steps: sum((x) => x.steps),
      elapsed_s: sum((x) => x.elapsed_s),
      wall_s: sum((x) => x.wall_s),
      samples_per_s: sum((x) => x.samples_per_s) / folds.length,
      final_loss: null,
    };
  });
}

/** Runs of one (loss, sampler) over seeds. */
export interface Variant {
  lossId: string;
  sampler: string;
  baseline: boolean;
  seeds: number[];
  /** Cross-validation: the folds behind each seed's figure. */
  folds?: number;
  /** Cross-validation: this row is the concatenated embedding (not the fold mean). */
  concatenated?: { folds: number; fold_dim: number; dim: number };
  /** Per column key: summary over seeds (absent when no run reported the metric). */
  stats: Record<string, Summary>;
  /** Per column key: the per-seed values, seed order. */
  values: Record<string, number[]>;
  /** Per column key: the seed of each entry of `values` (a run may lack a metric). */
  valueSeeds: Record<string, number[]>;
}

/**
 * Groups run records by (loss, sampler, embedding), in first-seen order, and summarises `keys`.
 * The records of a concatenated embedding form their own variant, beside the fold mean.
 */
export function aggregate(records: readonly RunRecord[], keys: readonly string[] = SUMMARY_COLUMNS.map((c) => c.key)): Variant[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    const k = `${r.lossId}\u0000${r.sampler}\u0000${r.concatenated ? `concat ${r.concatenated.dim}` : ""}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const out: Variant[] = [];
  for (const rs of groups.values()) {
    const sorted = [...rs].sort((a, b) => a.seed - b.seed);
    const first = sorted[0]!;
    const stats: Record<string, Summary> = {};
    const values: Record<string, number[]> = {};
    const valueSeeds: Record<string, number[]> = {};
    for (const key of keys) {
      const have = sorted.flatMap((r) => {
        const x = metricValue(r.metrics, key);
        return x === undefined ? [] : [{ seed: r.seed, x }];
      });
      if (have.length === 0) continue;
      values[key] = have.map((h) => h.x);
      valueSeeds[key] = have.map((h) => h.seed);
      stats[key] = tInterval(values[key]);
    }
    out.push({
      lossId: first.lossId,
      sampler: first.sampler,
      baseline: first.baseline,
      seeds: sorted.map((r) => r.seed),
      ...(first.folds !== undefined ? { folds: first.folds } : {}),
      ...(first.concatenated ? { concatenated: first.concatenated } : {}),
      stats,
      values,
      valueSeeds,
    });
  }
  return out;
}

/** Variant label: "fold mean" or "concatenated (F x d)" with cross-validation, "" without. */
export function embeddingLabel(v: { folds?: number; concatenated?: { folds: number; fold_dim: number } }): string {
  if (v.concatenated) return `concatenated (${v.concatenated.folds} x ${v.concatenated.fold_dim})`;
  return v.folds !== undefined ? "fold mean" : "";
}

/**
 * Aggregates the fold-mean (or plain) records and the concatenated-embedding records; each
 * concatenated variant follows the fold-mean variant of its (loss, sampler).
 */
export function aggregateWithConcatenated(runs: readonly RunRecord[], concatenated: readonly RunRecord[], keys?: readonly string[]): Variant[] {
  const main = aggregate(runs, keys);
  const extra = aggregate(concatenated, keys);
  const out: Variant[] = [];
  for (const v of main) {
    out.push(v);
    out.push(...extra.filter((c) => c.lossId === v.lossId && c.sampler === v.sampler));
  }
  out.push(...extra.filter((c) => !main.some((v) => v.lossId === c.lossId && v.sampler === c.sampler)));
  return out;
}

/** For each column, the index of the variant with the highest mean (ties: all of them). */
export function bestPerColumn(variants: readonly Variant[], keys: readonly string[]): Record<string, number[]> {
  const best: Record<string, number[]> = {};
  for (const key of keys) {
    let top = -Infinity;
    for (const v of variants) top = Math.max(top, v.stats[key]?.mean ?? -Infinity);
    best[key] = variants.flatMap((v, i) => (v.stats[key] !== undefined && v.stats[key]!.mean === top ? [i] : []));
  }
  return best;
}

/** Percent with two decimals, the one format used in every table (so tables parse back exactly). */
export function pct(x: number): string {
  return Number.isFinite(x) ? (x * 100).toFixed(2) : "n/a";
}

/** Method minus baseline over the seeds both ran (paired by seed), for one metric. */
export interface PairedGain {
  metric: string;
  baselineMean: number;
  methodMean: number;
  /** The seeds both variants ran, in order. */
  seeds: number[];
  /** Mean of the per-seed differences (method - baseline) with its 95% t interval. */
  diff: Summary;
}

/** Pairs two variants' values of `metric` by seed; undefined when they share no seed. */
export function pairedGain(base: Variant, meth: Variant, metric: string): PairedGain | undefined {
  const bs = base.valueSeeds[metric];
  const ms = meth.valueSeeds[metric];
  const bv = base.values[metric];
  const mv = meth.values[metric];
  if (!bs || !ms || !bv || !mv) return undefined;
  const seeds = bs.filter((s) => ms.includes(s));
  if (seeds.length === 0) return undefined;
  const a = seeds.map((s) => bv[bs.indexOf(s)]!);
  const b = seeds.map((s) => mv[ms.indexOf(s)]!);
  return { metric, baselineMean: base.stats[metric]!.mean, methodMean: meth.stats[metric]!.mean, seeds, diff: pairedDifference(a, b) };
}

/** The verdict on the claim for one loss. */
export interface ClaimVerdict {
  lossId: string;
  method: string;
  baselineSampler: string;
  /** The claimed metric: unpaired means, and the paired per-seed difference with its interval. */
  gain: PairedGain;
  minGain: number;
  /** The guard metric, paired the same way; kept when its difference interval reaches 0 or above. */
  guard?: PairedGain & { kept: boolean };
  held: boolean;
  /** Plain reasons when the claim did not hold. */
  reasons: string[];
}

/**
 * Checks the claim per loss from the aggregated numbers (with cross-validation: the fold means).
 * Held when the mean paired gain reaches `min_gain`, its 95% interval lies above 0, and the
 * guard's paired difference interval reaches 0 or above (not lost).
 */
export function checkClaim(claim: Claim, all: readonly Variant[]): ClaimVerdict[] {
  const out: ClaimVerdict[] = [];
  const variants = all.filter((v) => !v.concatenated);
  for (const lossId of claim.losses) {
    const base = variants.find((v) => v.lossId === lossId && v.baseline);
    const meth = variants.find((v) => v.lossId === lossId && v.sampler === claim.method);
    if (!base || !meth) continue;
    const gain = pairedGain(base, meth, claim.metric);
    if (!gain) continue;
    const d = gain.diff;
    const reasons: string[] = [];
    if (!(d.mean >= claim.min_gain)) reasons.push(`paired gain ${pct(d.mean)} points is below the required ${pct(claim.min_gain)}`);
    if (!Number.isFinite(d.low)) reasons.push("no interval (fewer than 2 paired seeds)");
    else if (!(d.low > 0)) reasons.push(`the 95% interval of the paired gain [${pct(d.low)}, ${pct(d.high)}] does not exclude 0`);
    let guard: ClaimVerdict["guard"];
    const g = claim.guard ? pairedGain(base, meth, claim.guard) : undefined;
    if (g) {
      // "Not lost": the paired difference's 95% interval reaches zero or above. Without an interval
      // (one seed) it cannot be shown: not kept, and the missing interval is already a reason.
      const kept = Number.isFinite(g.diff.high) && g.diff.high >= 0;
      guard = { ...g, kept };
      if (!kept && Number.isFinite(g.diff.high)) reasons.push(`${g.metric} lost: paired difference ${pct(g.diff.mean)} points, 95% interval [${pct(g.diff.low)}, ${pct(g.diff.high)}] entirely below 0`);
    }
    out.push({ lossId, method: claim.method, baselineSampler: base.sampler, gain, minGain: claim.min_gain, guard, held: reasons.length === 0, reasons });
  }
  return out;
}
