/**
 * Aggregation of finished runs: mean and 95% t-interval over seeds per (loss, sampler), the
 * summary table with the best value per column marked, and the check of the method's claim
 * computed from those numbers.
 * @internal
 */
import type { Claim } from "./suite.ts";
import { tInterval, welch, type Summary } from "./stats.ts";
import type { MetricSet, RunRecord } from "./types.ts";

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
];

/** Value of "coarse.recall@1"-style key in a metric set; undefined when absent. */
export function metricValue(m: MetricSet, key: string): number | undefined {
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
    const key = r.id.replace(/__f\d+$/, "");
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
    const metrics: MetricSet = { coarse: {} };
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
    for (const key of keys) {
      const xs = sorted.map((r) => metricValue(r.metrics, key)).filter((x): x is number => x !== undefined);
      if (xs.length === 0) continue;
      values[key] = xs;
      stats[key] = tInterval(xs);
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

/** The verdict on the claim for one loss. */
export interface ClaimVerdict {
  lossId: string;
  method: string;
  baselineSampler: string;
  metric: string;
  baselineMean: number;
  methodMean: number;
  gain: number;
  minGain: number;
  /** Intervals apart: the method's interval lies entirely above the baseline's. */
  apart: boolean;
  guard?: { metric: string; baselineMean: number; methodMean: number; diffLow: number; diffHigh: number; kept: boolean };
  held: boolean;
  /** Plain reasons when the claim did not hold. */
  reasons: string[];
}

/** Checks the claim per loss from the aggregated numbers (with cross-validation: the fold means). */
export function checkClaim(claim: Claim, all: readonly Variant[]): ClaimVerdict[] {
  const out: ClaimVerdict[] = [];
  const variants = all.filter((v) => !v.concatenated);
  for (const lossId of claim.losses) {
    const base = variants.find((v) => v.lossId === lossId && v.baseline);
    const meth = variants.find((v) => v.lossId === lossId && v.sampler === claim.method);
    if (!base || !meth) continue;
    const b = base.stats[claim.metric];
    const m = meth.stats[claim.metric];
    if (!b || !m) continue;
    const gain = m.mean - b.mean;
    const apart = Number.isFinite(m.low) && Number.isFinite(b.high) && m.low > b.high;
    const reasons: string[] = [];
    if (!(gain >= claim.min_gain)) reasons.push(`gain ${pct(gain)} points is below the required ${pct(claim.min_gain)}`);
    if (!apart) reasons.push(Number.isFinite(m.low) ? `95% intervals overlap (method low ${pct(m.low)} <= baseline high ${pct(b.high)})` : "no interval (fewer than 2 seeds)");
    let guard: ClaimVerdict["guard"];
    if (claim.guard) {
      const bg = base.values[claim.guard];
      const mg = meth.values[claim.guard];
      if (bg && mg) {
        const w = welch(bg, mg);
        // "Not lost": the Welch 95% interval of (method - baseline) reaches zero or above.
        // Without an interval (one seed) "not lost" cannot be shown: it counts as not kept, and the
        // missing interval is already the stated reason.
        const kept = Number.isFinite(w.high) && w.high >= 0;
        guard = { metric: claim.guard, baselineMean: base.stats[claim.guard]!.mean, methodMean: meth.stats[claim.guard]!.mean, diffLow: w.low, diffHigh: w.high, kept };
        if (!kept && Number.isFinite(w.high)) reasons.push(`${claim.guard} lost: difference ${pct(w.diff)} points, 95% interval [${pct(w.low)}, ${pct(w.high)}] entirely below 0`);
      }
    }
    out.push({ lossId, method: claim.method, baselineSampler: base.sampler, metric: claim.metric, baselineMean: b.mean, methodMean: m.mean, gain, minGain: claim.min_gain, apart, guard, held: reasons.length === 0, reasons });
  }
  return out;
}
