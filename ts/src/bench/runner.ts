/**
 * Runs a suite's run matrix through a runtime and writes its results folder:
 * manifest.json, runs/<id>/{metrics.jsonl,final.json,projection.json}, results.json,
 * results.csv, summary.md, report.html, embedding.svg and by-class.svg (all written atomically). With
 * cross-validation, each (loss, sampler, seed) also gets runs/<id>__concat/final.json: its
 * folds' selected models evaluated as one concatenated embedding (MLRC).
 * @internal
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeAtomic, writeJsonAtomic } from "./atomic.ts";
import { sha256Of } from "./canonical.ts";
import { concatNormalized, evalOptionsOf, evalSplitOf } from "./concat.ts";
import { buildManifest, type Manifest } from "./manifest.ts";
import { Progress } from "./progress.ts";
import { classKeysOf, classRecallSvg, embeddingFigure, reportHtml, stackSvgs, summaryMarkdown, textTable, type Curve, type ReportInput } from "./report.ts";
import { aggregate, aggregateWithConcatenated, averageFolds, checkClaim, embeddingLabel, metricValue, SUMMARY_COLUMNS, type ClaimVerdict, type Variant } from "./results.ts";
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

/** The id of a fold run's (loss, sampler, seed) group: the run id without "__f<k>". */
export function foldGroupOf(runId: string): string {
  return runId.replace(/__f\d+$/, "");
}

/** Config hash of a concatenated record: that of its folds' train configs, in fold order. */
function concatSha(folds: readonly RunSpec[]): string {
  return sha256Of(folds.map((f) => f.train));
}

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
  const curves: Curve[] = [];
  const projections: ReportInput["projections"] = {};
  for (const r of plain) {
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
  const classKeys = classKeysOf(runs.map((r) => r.metrics));
  const byClass = classKeys.length > 0 ? { keys: classKeys, variants: aggregate(runs, classKeys) } : undefined;
  const input: ReportInput = { suiteName: manifest.suite.name, description: manifest.suite.description, variants, claims, curves, projections, provenance, maxPoints: manifest.suite.projection.max_points, ...(byClass ? { byClass } : {}) };
  const summary = variants.map((x) => ({
    loss: x.lossId,
    sampler: x.sampler,
    baseline: x.baseline,
    ...(embeddingLabel(x) ? { embedding: embeddingLabel(x) } : {}),
    ...(x.concatenated ? { concatenated: x.concatenated } : {}),
    seeds: x.seeds,
    stats: x.stats,
    values: x.values,
  }));
  writeJsonAtomic(join(outDir, "results.json"), {
    suite: manifest.suite.name,
    config_sha256: manifest.config_sha256,
    columns: SUMMARY_COLUMNS,
    runs,
    ...(foldRuns.length > 0 ? { fold_runs: foldRuns } : {}),
    ...(concatenated.length > 0 ? { concatenated_runs: concatenated } : {}),
    summary,
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

/**
 * Embeds the eval split with each fold's selected model, joins the L2-normalised embeddings
 * (F x d) and evaluates the join with the folds' evaluation settings.
 */
async function concatenatedRecord(backend: BenchBackend, group: string, members: readonly { run: RunSpec; model: string; record: RunRecord }[], sha: string): Promise<RunRecord> {
  const t0 = performance.now();
  const parts = [];
  for (const m of members) parts.push(await backend.embed(m.model, m.run.train.data, evalSplitOf(m.run.train)));
  const joined = concatNormalized(parts);
  const first = members[0]!;
  const metrics = await backend.evaluateEmbeddings(joined, evalOptionsOf(first.run.train));
  const recs = members.map((m) => m.record);
  const sum = (f: (x: RunRecord) => number) => recs.reduce((a, x) => a + f(x), 0);
  return {
    id: `${group}__concat`,
    lossId: first.run.lossId,
    sampler: first.run.sampler,
    baseline: first.run.baseline,
    seed: first.run.seed,
    config_sha256: sha,
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
  // Cross-validation: the fold runs of each (loss, sampler, seed), and the selected models held
  // until the group's last fold is done (the concatenated embedding needs all of them).
  const groups = new Map<string, RunSpec[]>();
  for (const run of o.runs) if (run.fold !== undefined) groups.set(foldGroupOf(run.id), [...(groups.get(foldGroupOf(run.id)) ?? []), run]);
  const held = new Map<string, { run: RunSpec; model: string; record: RunRecord }[]>();
  // On resume a group counts as done only with its concatenated record: its fold models are
  // gone, so a group interrupted before that record is trained again from its first fold.
  const concatDone = new Map<string, RunRecord>();
  if (o.resume) {
    for (const [group, folds] of groups) {
      const p = join(o.outDir, "runs", `${group}__concat`, "final.json");
      if (!existsSync(p)) continue;
      const rec = JSON.parse(readFileSync(p, "utf8")) as RunRecord;
      if (rec.config_sha256 === concatSha(folds)) concatDone.set(group, rec);
    }
  }
  try {
    for (const [i, run] of o.runs.entries()) {
      const dir = join(o.outDir, "runs", run.id);
      const variantKey = `${run.lossId}__${run.sampler}`;
      const group = run.fold !== undefined ? foldGroupOf(run.id) : undefined;
      if (o.resume && (group === undefined || concatDone.has(group))) {
        const done = finishedRecord(dir, run);
        if (done) {
          records.push(done);
          skipped.push(run.id);
          if (existsSync(join(dir, "projection.json"))) projected.add(variantKey);
          stepsDone += stepsOf(run);
          const folds = group === undefined ? undefined : groups.get(group)!;
          if (folds && run.id === folds[folds.length - 1]!.id) records.push(concatDone.get(group!)!);
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
      let keep = false;
      try {
        stepsDone = before + stepsOf(run);
        writeAtomic(join(dir, "metrics.jsonl"), result.history.map((h) => JSON.stringify({ step: h.step, metrics: h.metrics })).join("\n") + (result.history.length ? "\n" : ""));
        if (o.suite.projection.enabled && !projected.has(variantKey)) {
          const proj = await o.backend.project(result.model, run.train.data, evalSplitOf(run.train));
          writeJsonAtomic(join(dir, "projection.json"), proj);
          projected.add(variantKey);
        }
        keep = group !== undefined;
      } finally {
        if (!keep) await o.backend.release(result.model);
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
      if (group !== undefined) held.set(group, [...(held.get(group) ?? []), { run, model: result.model, record }]);
      writeJsonAtomic(join(dir, "final.json"), record);
      records.push(record);
      if (group !== undefined && held.get(group)!.length === groups.get(group)!.length) {
        progress.update({ ...base, stepsDone, detail: `concatenated embedding of ${groups.get(group)!.length} folds` }, true);
        const members = held.get(group)!;
        held.delete(group);
        try {
          const rec = await concatenatedRecord(o.backend, group, members, concatSha(groups.get(group)!));
          writeJsonAtomic(join(o.outDir, "runs", rec.id, "final.json"), rec);
          records.push(rec);
        } finally {
          for (const m of members) await o.backend.release(m.model);
        }
      }
      progress.update({ ...base, runsDone: i + 1, stepsDone });
    }
  } finally {
    // A failed run leaves its group incomplete: free the fold models still held.
    for (const members of held.values()) for (const m of members) await o.backend.release(m.model).catch(() => undefined);
  }
  progress.done();
  const { variants, claims, table } = writeReports(o.outDir, manifest, records);
  return { outDir: o.outDir, manifest, records, variants, claims, table, skipped };
}
