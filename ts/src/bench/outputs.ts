/**
 * The aggregate outputs of a suite run, written from the records of its runs (all atomically):
 * results.json, results.csv, summary.md, report.html, embedding.svg and by-class.svg.
 * @internal
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeAtomic, writeJsonAtomic } from "./atomic.ts";
import type { Manifest } from "./manifest.ts";
import { classKeysOf, classRecallSvg, embeddingFigure, reportHtml, stackSvgs, summaryMarkdown, textTable, type Curve, type ReportInput } from "./report.ts";
import { aggregate, aggregateWithConcatenated, averageFolds, checkClaim, embeddingLabel, metricValue, SUMMARY_COLUMNS, type ClaimVerdict, type Variant } from "./results.ts";
import type { Metrics, Projection, RunRecord } from "./types.ts";

/**
 * CSV of the final metrics, one row per run, every metric as a column. With cross-validation an
 * `embedding` column tells the fold-mean rows from the concatenated ones.
 */
export function resultsCsv(records: readonly RunRecord[]): string {
  const keys = new Set<string>();
  for (const r of records) for (const g of ["coarse", "fine"] as const) for (const k of Object.keys(r.metrics[g] ?? {})) keys.add(`${g}.${k}`);
  const cols = [...keys].sort();
  const cv = records.some((r) => r.folds !== undefined || r.concatenated);
  const head = ["run", "loss", "sampler", "baseline", "seed", ...(cv ? ["embedding"] : []), "steps", "elapsed_s", ...cols];
  const lines = records.map((r) => [r.id, r.lossId, r.sampler, String(r.baseline), String(r.seed), ...(cv ? [embeddingLabel(r)] : []), String(r.steps), String(r.elapsed_s), ...cols.map((c) => String(metricValue(r.metrics, c) ?? ""))].join(","));
  return `${head.join(",")}\n${lines.join("\n")}\n`;
}

/** Learning curves (one per seed: fold 0's) and one projection per variant, from the runs' folders. */
function readRunFigures(outDir: string, plain: readonly RunRecord[]): { curves: Curve[]; projections: ReportInput["projections"] } {
  const curves: Curve[] = [];
  const projections: ReportInput["projections"] = {};
  for (const r of plain) {
    if (r.fold !== undefined && r.fold > 0) continue;
    const dir = join(outDir, "runs", r.id);
    const jsonl = join(dir, "metrics.jsonl");
    if (existsSync(jsonl)) {
      const history = readFileSync(jsonl, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { step: number; metrics: Metrics });
      curves.push({ lossId: r.lossId, sampler: r.sampler, seed: r.seed, history });
    }
    const pj = join(dir, "projection.json");
    const key = `${r.lossId}__${r.sampler}`;
    if (existsSync(pj) && !projections[key]) projections[key] = { seed: r.seed, projection: JSON.parse(readFileSync(pj, "utf8")) as Projection };
  }
  return { curves, projections };
}

/** Where the numbers come from, printed under the report. */
function provenanceLines(manifest: Manifest): string[] {
  const v = manifest.versions;
  return [
    `suite ${manifest.suite.name} (${manifest.suite_file}), config sha256 ${manifest.config_sha256}`,
    `nearpos ${v.nearpos}, runtime ${v.runtime}, Node ${v.node}, Python ${v.python}, torch ${v.torch}, ${v.platform}`,
    `device ${manifest.device}; git ${manifest.git.commit ?? "n/a"}${manifest.git.dirty ? " (dirty)" : ""}`,
    `command: ${manifest.command.join(" ")}`,
  ];
}

/** The `summary` of results.json: one entry per variant. */
function summaryOf(variants: readonly Variant[]): Record<string, unknown>[] {
  return variants.map((x) => ({
    loss: x.lossId,
    sampler: x.sampler,
    baseline: x.baseline,
    ...(embeddingLabel(x) ? { embedding: embeddingLabel(x) } : {}),
    ...(x.concatenated ? { concatenated: x.concatenated } : {}),
    seeds: x.seeds,
    stats: x.stats,
    values: x.values,
  }));
}

/** Writes the aggregate outputs from the records found in `outDir`. */
export function writeReports(outDir: string, manifest: Manifest, records: RunRecord[]): { variants: Variant[]; claims: ClaimVerdict[]; table: string } {
  // Cross-validation: a seed's figure is the mean over its folds' selected models, and beside it
  // the figure of those models' concatenated embedding.
  const concatenated = records.filter((r) => r.concatenated);
  const plain = records.filter((r) => !r.concatenated);
  const runs = averageFolds(plain);
  const foldRuns = plain.filter((r) => r.fold !== undefined);
  const variants = aggregateWithConcatenated(runs, concatenated);
  const claims = manifest.suite.claim ? checkClaim(manifest.suite.claim, variants) : [];
  const { curves, projections } = readRunFigures(outDir, plain);
  const classKeys = classKeysOf(runs.map((r) => r.metrics));
  const byClass = classKeys.length > 0 ? { keys: classKeys, variants: aggregate(runs, classKeys) } : undefined;
  const provenance = provenanceLines(manifest);
  const input: ReportInput = { suiteName: manifest.suite.name, description: manifest.suite.description, variants, claims, curves, projections, provenance, maxPoints: manifest.suite.projection.max_points, ...(byClass ? { byClass } : {}) };
  writeJsonAtomic(join(outDir, "results.json"), {
    suite: manifest.suite.name,
    config_sha256: manifest.config_sha256,
    columns: SUMMARY_COLUMNS,
    runs,
    ...(foldRuns.length > 0 ? { fold_runs: foldRuns } : {}),
    ...(concatenated.length > 0 ? { concatenated_runs: concatenated } : {}),
    summary: summaryOf(variants),
    claims,
  });
  writeAtomic(join(outDir, "results.csv"), resultsCsv([...runs, ...concatenated]));
  writeAtomic(join(outDir, "summary.md"), summaryMarkdown(input));
  writeAtomic(join(outDir, "report.html"), reportHtml(input));
  if (Object.keys(projections).length > 0) writeAtomic(join(outDir, "embedding.svg"), embeddingFigure(input));
  const classFigures = [...new Set(runs.map((r) => r.lossId))].map((l) => classRecallSvg(input, l)).filter(Boolean);
  if (classFigures.length > 0) writeAtomic(join(outDir, "by-class.svg"), stackSvgs(classFigures));
  return { variants, claims, table: textTable(variants) };
}
