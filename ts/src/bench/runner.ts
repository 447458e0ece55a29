/**
 * Runs a suite's run matrix through a runtime and writes its results folder:
 * manifest.json, runs/<id>/{metrics.jsonl,final.json,projection.json} and the aggregate outputs
 * (outputs.ts), all written atomically. With cross-validation, each (loss, sampler, seed) also
 * gets runs/<id>__concat/final.json: its folds' selected models evaluated as one concatenated
 * embedding (MLRC, concat.ts).
 *
 * Phases: the manifest (checked against the folder's on resume), then per run: taken from disk
 * on resume, or trained and written; after a group's last fold, its concatenation; last, the
 * aggregate outputs.
 * @internal
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeAtomic, writeJsonAtomic } from "./atomic.ts";
import { sha256Of } from "./canonical.ts";
import { concatenatedRecord, concatRunId, concatSha, evalSplitOf, type FoldMember } from "./concat.ts";
import { buildManifest, type Manifest } from "./manifest.ts";
import { writeReports } from "./outputs.ts";
import { Progress, type ProgressState } from "./progress.ts";
import type { ClaimVerdict, Variant } from "./results.ts";
import { foldGroupOf, type RunSpec, type Suite } from "./suite.ts";
import type { BenchBackend, RunRecord } from "./types.ts";

/** What the backend's `train` resolves to. */
type TrainResult = Awaited<ReturnType<BenchBackend["train"]>>;

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

/** Runs every run of the matrix (or skips finished ones with `resume`) and writes all outputs. */
export async function runSuite(o: RunSuiteOptions): Promise<SuiteOutcome> {
  const manifest = writeManifest(o);
  const suiteRun = new SuiteRun(o);
  try {
    for (const [i, run] of o.runs.entries()) {
      if (!suiteRun.resumeRun(run)) await suiteRun.runOne(run, i);
    }
  } finally {
    await suiteRun.releaseHeld();
  }
  suiteRun.progress.done();
  const { records, skipped } = suiteRun;
  const { variants, claims, table } = writeReports(o.outDir, manifest, records);
  return { outDir: o.outDir, manifest, records, variants, claims, table, skipped };
}

// ---------------------------------------------------------------- plan and resume check

/** Writes manifest.json; on resume the folder's manifest must be for the same configuration. */
function writeManifest(o: RunSuiteOptions): Manifest {
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
  return manifest;
}

function stepsOf(run: RunSpec): number {
  return typeof run.train.steps === "number" ? run.train.steps : 1000;
}

/** A finished record at `file`, if present and made from the config of hash `sha`. */
function finishedRecord(file: string, sha: string): RunRecord | undefined {
  if (!existsSync(file)) return undefined;
  const rec = JSON.parse(readFileSync(file, "utf8")) as RunRecord;
  return rec.config_sha256 === sha ? rec : undefined;
}

/** Cross-validation: the fold runs of each (loss, sampler, seed) group, in fold order. */
function foldGroups(runs: readonly RunSpec[]): Map<string, RunSpec[]> {
  const groups = new Map<string, RunSpec[]>();
  for (const run of runs) if (run.fold !== undefined) groups.set(foldGroupOf(run.id), [...(groups.get(foldGroupOf(run.id)) ?? []), run]);
  return groups;
}

/**
 * On resume a group counts as done only with its concatenated record: its fold models are
 * gone, so a group interrupted before that record is trained again from its first fold.
 */
function concatenatedOnDisk(outDir: string, groups: ReadonlyMap<string, RunSpec[]>): Map<string, RunRecord> {
  const done = new Map<string, RunRecord>();
  for (const [group, folds] of groups) {
    const rec = finishedRecord(join(outDir, "runs", concatRunId(group), "final.json"), concatSha(folds));
    if (rec) done.set(group, rec);
  }
  return done;
}

/** The record of a trained run, as written to its final.json. */
function recordOf(run: RunSpec, result: TrainResult, wall_s: number): RunRecord {
  return {
    id: run.id,
    lossId: run.lossId,
    sampler: run.sampler,
    baseline: run.baseline,
    seed: run.seed,
    config_sha256: sha256Of(run.train),
    metrics: result.metrics,
    steps: result.steps,
    elapsed_s: result.elapsed_s,
    wall_s,
    samples_per_s: result.samples_per_s,
    device: result.device,
    final_loss: result.losses.length > 0 ? result.losses[result.losses.length - 1]! : null,
    ...(run.fold !== undefined ? { fold: run.fold, best_step: result.best_step ?? null, best_val_metrics: result.best_val_metrics ?? null } : {}),
  };
}

// ---------------------------------------------------------------- the runs

/** The state of one suite run: records so far, progress, and fold models held for concatenation. */
class SuiteRun {
  readonly records: RunRecord[] = [];
  readonly skipped: string[] = [];
  readonly progress: Progress;
  private stepsDone = 0;
  private readonly stepsTotal: number;
  /** Variants (loss__sampler) that have their projection.json: one per variant. */
  private readonly projected = new Set<string>();
  private readonly groups: Map<string, RunSpec[]>;
  private readonly held = new Map<string, FoldMember[]>();
  private readonly concatDone: Map<string, RunRecord>;

  constructor(private readonly o: RunSuiteOptions) {
    this.progress = o.progress ?? new Progress();
    this.stepsTotal = o.runs.reduce((s, r) => s + stepsOf(r), 0);
    this.groups = foldGroups(o.runs);
    this.concatDone = o.resume ? concatenatedOnDisk(o.outDir, this.groups) : new Map();
  }

  private dirOf(run: RunSpec): string {
    return join(this.o.outDir, "runs", run.id);
  }

  /** With resume, takes a finished run (and its group's concatenation) from disk; false when it must run. */
  resumeRun(run: RunSpec): boolean {
    if (!this.o.resume) return false;
    const group = run.fold !== undefined ? foldGroupOf(run.id) : undefined;
    if (group !== undefined && !this.concatDone.has(group)) return false;
    const done = finishedRecord(join(this.dirOf(run), "final.json"), sha256Of(run.train));
    if (!done) return false;
    this.records.push(done);
    this.skipped.push(run.id);
    if (existsSync(join(this.dirOf(run), "projection.json"))) this.projected.add(`${run.lossId}__${run.sampler}`);
    this.stepsDone += stepsOf(run);
    const folds = group === undefined ? undefined : this.groups.get(group)!;
    if (folds && run.id === folds[folds.length - 1]!.id) this.records.push(this.concatDone.get(group!)!);
    return true;
  }

  /** Trains run `i`, writes its outputs, and after a group's last fold its concatenation. */
  async runOne(run: RunSpec, i: number): Promise<void> {
    const state = { label: run.id, runsDone: i, runsTotal: this.o.runs.length, stepsTotal: this.stepsTotal };
    const t0 = performance.now();
    const result = await this.train(run, state);
    const group = run.fold !== undefined ? foldGroupOf(run.id) : undefined;
    await this.writeRunFiles(run, result, group !== undefined);
    const record = recordOf(run, result, (performance.now() - t0) / 1000);
    if (group !== undefined) this.held.set(group, [...(this.held.get(group) ?? []), { run, model: result.model, record }]);
    writeJsonAtomic(join(this.dirOf(run), "final.json"), record);
    this.records.push(record);
    if (group !== undefined && this.held.get(group)!.length === this.groups.get(group)!.length) await this.concatenate(group, state);
    this.progress.update({ ...state, runsDone: i + 1, stepsDone: this.stepsDone });
  }

  /** Runs `train`, turning its step and warning events into progress. */
  private async train(run: RunSpec, state: Omit<ProgressState, "stepsDone">): Promise<TrainResult> {
    const before = this.stepsDone;
    this.progress.update({ ...state, stepsDone: before }, true);
    const result = await this.o.backend.train(run.train, (ev) => {
      if (ev.type === "step" && typeof ev.data.step === "number") {
        this.stepsDone = before + ev.data.step;
        const loss = typeof ev.data.loss === "number" ? ` loss ${ev.data.loss.toFixed(4)}` : "";
        this.progress.update({ ...state, stepsDone: this.stepsDone, detail: `step ${ev.data.step}/${stepsOf(run)}${loss}` });
      } else if (ev.type === "warning") {
        this.progress.log(`warning (${run.id}): ${String(ev.data.message)}`);
      }
    });
    this.stepsDone = before + stepsOf(run);
    return result;
  }

  /** metrics.jsonl and, for a variant's first run, projection.json; frees the model unless `keep`. */
  private async writeRunFiles(run: RunSpec, result: TrainResult, keep: boolean): Promise<void> {
    const variantKey = `${run.lossId}__${run.sampler}`;
    let kept = false;
    try {
      writeAtomic(join(this.dirOf(run), "metrics.jsonl"), result.history.map((h) => JSON.stringify({ step: h.step, metrics: h.metrics })).join("\n") + (result.history.length ? "\n" : ""));
      if (this.o.suite.projection.enabled && !this.projected.has(variantKey)) {
        const proj = await this.o.backend.project(result.model, run.train.data, evalSplitOf(run.train));
        writeJsonAtomic(join(this.dirOf(run), "projection.json"), proj);
        this.projected.add(variantKey);
      }
      kept = keep;
    } finally {
      if (!kept) await this.o.backend.release(result.model);
    }
  }

  // ---------------------------------------------------------------- cross-validation

  /** The concatenated record of a group whose folds are all done; frees the fold models. */
  private async concatenate(group: string, state: Omit<ProgressState, "stepsDone">): Promise<void> {
    const members = this.held.get(group)!;
    this.progress.update({ ...state, stepsDone: this.stepsDone, detail: `concatenated embedding of ${members.length} folds` }, true);
    this.held.delete(group);
    try {
      const rec = await concatenatedRecord(this.o.backend, group, members);
      writeJsonAtomic(join(this.o.outDir, "runs", rec.id, "final.json"), rec);
      this.records.push(rec);
    } finally {
      for (const m of members) await this.o.backend.release(m.model);
    }
  }

  /** A failed run leaves its group incomplete: frees the fold models still held. */
  async releaseHeld(): Promise<void> {
    for (const members of this.held.values()) for (const m of members) await this.o.backend.release(m.model).catch(() => undefined);
    this.held.clear();
  }
}
