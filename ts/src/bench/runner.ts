/**
 * Runs a suite's run matrix through a runtime and writes its results folder:
 * manifest.json, runs/<id>/{metrics.jsonl,final.json,projection.json}, results.json,
 * results.csv, summary.md, report.html and embedding.svg (all written atomically).
 * @internal
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeAtomic, writeJsonAtomic } from "./atomic.ts";
import { sha256Of } from "./canonical.ts";
import { buildManifest, type Manifest } from "./manifest.ts";
import { Progress } from "./progress.ts";
import { embeddingFigure, reportHtml, summaryMarkdown, textTable, type Curve, type ReportInput } from "./report.ts";
import { aggregate, averageFolds, checkClaim, metricValue, SUMMARY_COLUMNS, type ClaimVerdict, type Variant } from "./results.ts";
import type { RunSpec, Suite } from "./suite.ts";
import type { BenchBackend, MetricSet, Projection, RunRecord } from "./types.ts";

/** Options of {@link runSuite}. */
export interface RunSuiteOptions {
  suite: Suite;
  suiteFile: string;
  runs: RunSpec[];
  outDir: string;
  backend: BenchBackend;
  /** Skip runs whose final.json exists with the same config hash. */
  resume?: boolean;
  progress?: Progress;
  selection?: Record<string, unknown>;
  command?: string[];
}

/** What a finished suite run produced. */
export interface SuiteOutcome {
  outDir: string;
  manifest: Manifest;
  records: RunRecord[];
  variants: Variant[];
  claims: ClaimVerdict[];
  table: string;
  skipped: string[];
}

function stepsOf(run: RunSpec): number {
  return typeof run.train.steps === "number" ? run.train.steps : 1000;
}

/** Reads a finished run's record if present and made from the same config. */
function finishedRecord(dir: string, run: RunSpec): RunRecord | undefined {
  const p = join(dir, "final.json");
  if (!existsSync(p)) return undefined;
  const rec = JSON.parse(readFileSync(p, "utf8")) as RunRecord;
  return rec.config_sha256 === sha256Of(run.train) ? rec : undefined;
}

/** CSV of the final metrics, one row per run, every metric as a column. */
export function resultsCsv(records: readonly RunRecord[]): string {
  const keys = new Set<string>();
  for (const r of records) for (const g of ["coarse", "fine"] as const) for (const k of Object.keys(r.metrics[g] ?? {})) keys.add(`${g}.${k}`);
  const cols = [...keys].sort();
  const head = ["run", "loss", "sampler", "baseline", "seed", "steps", "elapsed_s", ...cols];
  const lines = records.map((r) => [r.id, r.lossId, r.sampler, String(r.baseline), String(r.seed), String(r.steps), String(r.elapsed_s), ...cols.map((c) => String(metricValue(r.metrics, c) ?? ""))].join(","));
  return `${head.join(",")}\n${lines.join("\n")}\n`;
}

/** Writes the aggregate outputs from the records found in `outDir`. */
export function writeReports(outDir: string, manifest: Manifest, records: RunRecord[]): { variants: Variant[]; claims: ClaimVerdict[]; table: string } {
  // Cross-validation: a seed's figure is the mean over its folds' selected models.
  const runs = averageFolds(records);
  const foldRuns = records.filter((r) => r.fold !== undefined);
  const variants = aggregate(runs);
  const claims = manifest.suite.claim ? checkClaim(manifest.suite.claim, variants) : [];
  const curves: Curve[] = [];
  const projections: ReportInput["projections"] = {};
  for (const r of records) {
    if (r.fold !== undefined && r.fold > 0) continue; // one curve per seed: fold 0's
    const dir = join(outDir, "runs", r.id);
    const jsonl = join(dir, "metrics.jsonl");
    if (existsSync(jsonl)) {
      const history = readFileSync(jsonl, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { step: number; metrics: MetricSet });
      curves.push({ lossId: r.lossId, sampler: r.sampler, seed: r.seed, history });
    }
    const pj = join(dir, "projection.json");
    const key = `${r.lossId}__${r.sampler}`;
    if (existsSync(pj) && !projections[key]) projections[key] = { seed: r.seed, projection: JSON.parse(readFileSync(pj, "utf8")) as Projection };
  }
  const v = manifest.versions;
  const provenance = [
    `suite ${manifest.suite.name} (${manifest.suite_file}), config sha256 ${manifest.config_sha256}`,
    `nearpos ${v.nearpos}, runtime ${v.runtime}, Node ${v.node}, Python ${v.python}, torch ${v.torch}, ${v.platform}`,
    `device ${manifest.device}; git ${manifest.git.commit ?? "n/a"}${manifest.git.dirty ? " (dirty)" : ""}`,
    `command: ${manifest.command.join(" ")}`,
  ];
  const input: ReportInput = { suiteName: manifest.suite.name, description: manifest.suite.description, variants, claims, curves, projections, provenance, maxPoints: manifest.suite.projection.max_points };
  const summary = variants.map((x) => ({ loss: x.lossId, sampler: x.sampler, baseline: x.baseline, seeds: x.seeds, stats: x.stats, values: x.values }));
  writeJsonAtomic(join(outDir, "results.json"), { suite: manifest.suite.name, config_sha256: manifest.config_sha256, columns: SUMMARY_COLUMNS, runs, ...(foldRuns.length > 0 ? { fold_runs: foldRuns } : {}), summary, claims });
  writeAtomic(join(outDir, "results.csv"), resultsCsv(runs));
  writeAtomic(join(outDir, "summary.md"), summaryMarkdown(input));
  writeAtomic(join(outDir, "report.html"), reportHtml(input));
  if (Object.keys(projections).length > 0) writeAtomic(join(outDir, "embedding.svg"), embeddingFigure(input));
  return { variants, claims, table: textTable(variants) };
}

/** Runs every run of the matrix (or skips finished ones with `resume`) and writes all outputs. */
export async function runSuite(o: RunSuiteOptions): Promise<SuiteOutcome> {
  const progress = o.progress ?? new Progress();
  const manifest = buildManifest({ suite: o.suite, suiteFile: o.suiteFile, runs: o.runs, selection: o.selection ?? {}, hello: o.backend.hello, command: o.command ?? process.argv.slice(1) });
  const manifestPath = join(o.outDir, "manifest.json");
  if (o.resume && existsSync(manifestPath)) {
    const old = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    if (old.config_sha256 !== manifest.config_sha256) {
      throw new Error(`--resume: ${manifestPath} was written for another configuration (config sha256 ${old.config_sha256}, now ${manifest.config_sha256}); use a new --out folder`);
    }
    manifest.created_at = old.created_at;
  }
  writeJsonAtomic(manifestPath, manifest);

  const stepsTotal = o.runs.reduce((s, r) => s + stepsOf(r), 0);
  let stepsDone = 0;
  const records: RunRecord[] = [];
  const skipped: string[] = [];
  const projected = new Set<string>();
  for (const [i, run] of o.runs.entries()) {
    const dir = join(o.outDir, "runs", run.id);
    const variantKey = `${run.lossId}__${run.sampler}`;
    if (o.resume) {
      const done = finishedRecord(dir, run);
      if (done) {
        records.push(done);
        skipped.push(run.id);
        if (existsSync(join(dir, "projection.json"))) projected.add(variantKey);
        stepsDone += stepsOf(run);
        continue;
      }
    }
    const base = { label: run.id, runsDone: i, runsTotal: o.runs.length, stepsTotal };
    const before = stepsDone;
    progress.update({ ...base, stepsDone }, true);
    const t0 = performance.now();
    const result = await o.backend.train(run.train, (ev) => {
      if (ev.type === "step" && typeof ev.data.step === "number") {
        stepsDone = before + ev.data.step;
        const loss = typeof ev.data.loss === "number" ? ` loss ${ev.data.loss.toFixed(4)}` : "";
        progress.update({ ...base, stepsDone, detail: `step ${ev.data.step}/${stepsOf(run)}${loss}` });
      } else if (ev.type === "warning") {
        progress.log(`warning (${run.id}): ${String(ev.data.message)}`);
      }
    });
    try {
      stepsDone = before + stepsOf(run);
      writeAtomic(join(dir, "metrics.jsonl"), result.history.map((h) => JSON.stringify({ step: h.step, metrics: h.metrics })).join("\n") + (result.history.length ? "\n" : ""));
      if (o.suite.projection.enabled && !projected.has(variantKey)) {
        const evalSplit = typeof (run.train.eval as Record<string, unknown> | undefined)?.split === "string" ? String((run.train.eval as Record<string, unknown>).split) : "test";
        const proj = await o.backend.project(result.model, run.train.data, evalSplit);
        writeJsonAtomic(join(dir, "projection.json"), proj);
        projected.add(variantKey);
      }
    } finally {
      await o.backend.release(result.model);
    }
    const record: RunRecord = {
      id: run.id,
      lossId: run.lossId,
      sampler: run.sampler,
      baseline: run.baseline,
      seed: run.seed,
      config_sha256: sha256Of(run.train),
      metrics: result.metrics,
      steps: result.steps,
      elapsed_s: result.elapsed_s,
      wall_s: (performance.now() - t0) / 1000,
      samples_per_s: result.samples_per_s,
      device: result.device,
      final_loss: result.losses.length > 0 ? result.losses[result.losses.length - 1]! : null,
      ...(run.fold !== undefined ? { fold: run.fold, best_step: result.best_step ?? null, best_val_metrics: result.best_val_metrics ?? null } : {}),
    };
    writeJsonAtomic(join(dir, "final.json"), record);
    records.push(record);
    progress.update({ ...base, runsDone: i + 1, stepsDone });
  }
  progress.done();
  const { variants, claims, table } = writeReports(o.outDir, manifest, records);
  return { outDir: o.outDir, manifest, records, variants, claims, table, skipped };
}
