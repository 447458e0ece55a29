/**
 * `nearpos bench`: runs a benchmark suite (default `mnist-coarse`) and writes its results
 * folder; `--dry-run` validates a suite without data; `--list` lists the built-in suites.
 *
 * The options are declared once, in {@link BENCH_OPTIONS}: commander's flags and the zod
 * schema that checks them both come from it (../options.ts); runtime options reuse
 * `RuntimeOptionsSchema`'s entries.
 * The command's phases: the list, the plan (the runs of a suite or a manifest), the checks
 * against the runtime, then the dry-run report or the run and its summary.
 * @internal
 */
import { Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { RuntimeBackend } from "../../bench/backend.ts";
import type { Manifest } from "../../bench/manifest.ts";
import { formatDuration, Progress } from "../../bench/progress.ts";
import { claimLines } from "../../bench/report.ts";
import { runSuite, type SuiteOutcome } from "../../bench/runner.ts";
import { expandSuite, issueLine, listSuites, loadSuite, lossId, samplerConfigField, SuiteError, SuiteSchema, type RunSpec, type Suite, type SuiteIssue } from "../../bench/suite.ts";
import type { BenchBackend } from "../../bench/types.ts";
import { checkDataPaths, compileTrainSchema, validateLosses, validateRuns, validateSamplers, type DataPathCheck } from "../../bench/validate.ts";
import type { RuntimeOptions } from "../../runtime/options.ts";
import { CliExit, EXIT, type CliIO } from "../io.ts";
import { commanderOptions, option, runtimeOption, runtimeOptionsOf, schemaOf } from "../options.ts";
import { compareCommand } from "./compare.ts";

// ---------------------------------------------------------------- options

/** "3" means seeds 0, 1, 2; "0,5,9" means exactly those. */
const SeedsSchema = z
  .string()
  .regex(/^\d+(,\d+)*$/, 'a count ("3") or a comma-separated list ("0,1,2")')
  .transform((s) => (s.includes(",") ? s.split(",").map(Number) : Array.from({ length: Number(s) }, (_, i) => i)))
  .refine((xs) => xs.length > 0 && new Set(xs).size === xs.length, "at least one seed, all distinct");

/** The options of `nearpos bench`, each declared once (the key is commander's attribute name). */
export const BENCH_OPTIONS = {
  suite: option("--suite <name>", "built-in suite name or path of a suite file", z.string().min(1).default("mnist-coarse")),
  list: option("--list", "list the built-in suites", z.boolean().default(false)),
  loss: option("--loss <names...>", "run only these losses (ids or names)", z.array(z.string().min(1)).optional()),
  sampler: option("--sampler <names...>", 'run exactly these samplers for every loss ("baseline": the loss\'s own)', z.array(z.string().min(1)).optional()),
  seeds: option("--seeds <n|list>", 'number of seeds ("3") or a list ("0,1,2")', SeedsSchema.optional()),
  device: option("--device <device>", "cpu, cuda or auto", z.enum(["cpu", "cuda", "auto"]).optional()),
  nproc: option(
    "--nproc <n>",
    "train every run on n processes of this machine (torch.distributed: gloo on CPU, nccl on CUDA; 1: one process)",
    z.string().regex(/^[1-9]\d{0,3}$/, "a whole number from 1 to 1024").transform(Number).optional(),
  ),
  quick: option("--quick", "the suite's quick settings (fewer steps or seeds)", z.boolean().default(false)),
  out: option("--out <dir>", "results folder (default results/<suite>-<timestamp>)", z.string().min(1).optional()),
  resume: option("--resume", "skip runs already finished in --out", z.boolean().default(false)),
  dryRun: option("--dry-run", "validate the suite and every run config, check data paths; train nothing", z.boolean().default(false)),
  fromManifest: option("--from-manifest <file>", "rerun exactly the runs of a manifest.json (or a results folder)", z.string().min(1).optional()),
  python: runtimeOption("python", "--python <path>", "Python interpreter of the runtime"),
  progress: option("--no-progress", "no progress bar", z.boolean().default(true)),
  json: option("--json", "machine-readable output on stdout", z.boolean().default(false)),
};

/** Options of `nearpos bench`, as commander's values are checked. */
export const BenchOptionsSchema = schemaOf(BENCH_OPTIONS);
export type BenchOptions = z.infer<typeof BenchOptionsSchema>;

/** Starts the backend a command uses, with the runtime options of the command line; tests may swap in another runtime start. */
export type BackendFactory = (options: RuntimeOptions) => Promise<BenchBackend>;

/** The default backend: a real runtime process. */
export const defaultBackend: BackendFactory = (options) => RuntimeBackend.start(options);

/** Builds the `bench` command (with its `compare` subcommand). */
export function benchCommand(io: CliIO, setExit: (code: number) => void, startBackend: BackendFactory): Command {
  const cmd = new Command("bench").description("run a benchmark suite and write manifest, metrics, summary and report");
  for (const opt of commanderOptions(BENCH_OPTIONS)) cmd.addOption(opt);
  cmd.action(async (raw: Record<string, unknown>) => {
    setExit(await bench(BenchOptionsSchema.parse(raw), io, startBackend));
  });
  cmd.addCommand(compareCommand(io, setExit));
  return cmd;
}

// ---------------------------------------------------------------- the command

/** The body of `nearpos bench`; returns the exit code. */
export async function bench(opts: BenchOptions, io: CliIO, startBackend: BackendFactory): Promise<number> {
  const out = (s: string) => io.stdout.write(`${s}\n`);
  if (opts.list) return printList(opts, out);
  const plan = opts.fromManifest ? planFromManifest(opts.fromManifest) : planFromSuite(opts);
  const backend = await startBackend(runtimeOptionsOf(BENCH_OPTIONS, opts));
  try {
    if (opts.dryRun) return dryRun(backend, plan, opts, out);
    checkRuntime(backend, plan);
    const missing = checkDataPaths(plan.suite).filter((p) => !p.exists);
    if (missing.length > 0) throw new CliExit(EXIT.usage, `error: data not found: ${missing.map((p) => `${p.field} = ${p.path}`).join(", ")}`);
    const t0 = performance.now();
    const res = await runPlan(backend, plan, opts, io);
    printOutcome(res, opts, out, (performance.now() - t0) / 1000);
    return EXIT.ok;
  } finally {
    await backend.close();
  }
}

function printList(opts: BenchOptions, out: (s: string) => void): number {
  const rows = listSuites().map((name) => {
    const { suite } = loadSuite(name);
    return { name, protocol: suite.protocol, runs: expandSuite(suite).length, description: suite.description };
  });
  if (opts.json) out(JSON.stringify(rows, null, 2));
  else for (const r of rows) out(`${r.name.padEnd(22)} ${r.protocol.padEnd(6)} ${String(r.runs).padStart(4)} runs  ${r.description.split(/[:.](\s|$)/)[0]}`);
  return EXIT.ok;
}

// ---------------------------------------------------------------- plan

/** What a command runs: the resolved suite, the file it names in errors, and its runs. */
interface Plan {
  suite: Suite;
  file: string;
  runs: RunSpec[];
  /** The file that holds a JSON path of the suite (a base it extends, or `file`). */
  fileOf: (path: readonly (string | number)[]) => string;
}

function planFromSuite(opts: BenchOptions): Plan {
  const { suite, file, sources } = loadSuite(opts.suite);
  const runs = expandSuite(suite, { losses: opts.loss, samplers: opts.sampler, seeds: opts.seeds, device: opts.device, nproc: opts.nproc, quick: opts.quick });
  return { suite, file, runs, fileOf: (p) => sources.fileOf(p) };
}

/** The runs a manifest recorded, with the resolved suite it recorded (so a rerun is the same). */
function planFromManifest(path: string): Plan {
  const m = loadManifest(path);
  const suite = m.suite;
  const file = resolve(path);
  const runs = m.runs.map((r) => {
    const lossIndex = suite.losses.findIndex((l) => (l.id ?? lossId(l.name)) === r.lossId);
    const samplerConfigFrom = samplerConfigField(suite.losses[lossIndex], r.sampler);
    return { id: r.id, lossId: r.lossId, lossIndex, sampler: r.sampler, baseline: r.baseline, samplerConfigFrom, seed: r.seed, train: r.train };
  });
  return { suite, file, runs, fileOf: () => file };
}

/** Loads a manifest for --from-manifest (a file or a results folder holding manifest.json). */
function loadManifest(path: string): Manifest {
  const file = existsSync(join(path, "manifest.json")) ? join(path, "manifest.json") : path;
  if (!existsSync(file)) throw new CliExit(EXIT.usage, `error: --from-manifest: ${file} does not exist`);
  const m = JSON.parse(readFileSync(file, "utf8")) as Manifest;
  if (m.format !== "nearpos-bench/1") throw new CliExit(EXIT.usage, `error: --from-manifest: ${file} is not a nearpos benchmark manifest (format ${JSON.stringify(m.format)})`);
  const parsed = SuiteSchema.safeParse(m.suite);
  if (!parsed.success) throw new SuiteError(`${file} (suite)`, parsed.error.issues.map((i) => ({ path: `$.suite.${i.path.join(".")}`, message: i.message })));
  return m;
}

// ---------------------------------------------------------------- checks against the runtime

/** Every run against the runtime's `train` schema, samplers and losses; throws SuiteError naming the suite fields. */
function checkRuntime(backend: BenchBackend, plan: Plan): void {
  const hello = backend.hello;
  const train = hello.methods.find((m) => m.name === "train");
  if (!train) throw new CliExit(EXIT.failure, `error: the runtime has no "train" method (methods: ${hello.methods.map((m) => m.name).join(", ")})`);
  if (plan.runs.some((r) => r.train.device === "cuda") && !hello.devices.some((d) => d.type === "cuda")) {
    throw new CliExit(EXIT.usage, `error: device "cuda" requested but the runtime sees no CUDA device (devices: ${hello.devices.map((d) => d.type).join(", ")}); use --device cpu or auto`);
  }
  const issues = [...(train.params_schema ? validateRuns(compileTrainSchema(train.params_schema), plan.runs) : []), ...validateSamplers(hello.plugins, plan.runs), ...validateLosses(hello.plugins, plan.runs)];
  if (issues.length === 0) return;
  throw new SuiteError(
    plan.file,
    issues.map((i) => {
      const owner = plan.fileOf(i.location);
      return { path: i.path, message: `${i.message} (run ${i.run})`, ...(owner !== plan.file ? { file: owner } : {}) };
    }),
  );
}

/** --dry-run: the runs, the data paths and every problem found, without training. */
function dryRun(backend: BenchBackend, plan: Plan, opts: BenchOptions, out: (s: string) => void): number {
  let problems: SuiteIssue[] = [];
  try {
    checkRuntime(backend, plan);
  } catch (e) {
    if (!(e instanceof SuiteError)) throw e;
    problems = [...e.issues];
  }
  const paths = checkDataPaths(plan.suite);
  const { suite, file, runs } = plan;
  if (opts.json) out(JSON.stringify({ suite: suite.name, file, runs: runs.map((r) => r.id), valid: problems.length === 0, problems, data_paths: paths, cross_validation: suite.cross_validation ?? null }, null, 2));
  else printDryRun(plan, problems, paths, out);
  return problems.length === 0 ? EXIT.ok : EXIT.usage;
}

function printDryRun(plan: Plan, problems: readonly SuiteIssue[], paths: readonly DataPathCheck[], out: (s: string) => void): void {
  const { suite, file, runs } = plan;
  out(`suite ${suite.name} (${file}): ${runs.length} runs`);
  for (const r of runs) out(`  ${r.id}`);
  for (const p of paths) out(`data path ${p.field} = ${p.path}: ${p.exists ? "present" : "MISSING"}`);
  const cv = suite.cross_validation;
  if (cv) out(`cross-validation: ${cv.folds} ${cv.split} folds, model selection on ${cv.select_on}; reported: fold mean and concatenated (${cv.folds} x d)`);
  if (problems.length === 0) out("all run configs are valid for this runtime");
  else {
    out(`invalid: ${file}`);
    for (const p of problems) out(`  ${issueLine(p)}`);
  }
}

// ---------------------------------------------------------------- run and report

function timestamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
}

async function runPlan(backend: BenchBackend, plan: Plan, opts: BenchOptions, io: CliIO): Promise<SuiteOutcome> {
  const { suite, file, runs } = plan;
  const outDir = resolve(opts.out ?? join("results", `${suite.name}-${timestamp()}${opts.fromManifest ? "-repro" : ""}`));
  if (opts.resume && !opts.out) throw new CliExit(EXIT.usage, "error: --resume needs --out <dir> (the folder to resume)");
  const progress = new Progress({ stream: io.stderr, silent: !opts.progress });
  progress.log(`nearpos bench: suite ${suite.name}, ${runs.length} runs -> ${outDir}`);
  const cv = suite.cross_validation;
  if (cv) progress.log(`cross-validation: ${cv.folds} class-disjoint folds per run, model selection on validation ${cv.select_on}; reported: the mean over folds and the folds' concatenated embedding (${cv.folds} x d)`);
  return runSuite({
    suite,
    suiteFile: file,
    runs,
    outDir,
    backend,
    resume: opts.resume,
    progress,
    selection: { loss: opts.loss ?? null, sampler: opts.sampler ?? null, seeds: opts.seeds ?? null, device: opts.device ?? null, nproc: opts.nproc ?? null, quick: opts.quick, from_manifest: opts.fromManifest ?? null },
    command: ["nearpos", ...process.argv.slice(2)],
  });
}

function printOutcome(res: SuiteOutcome, opts: BenchOptions, out: (s: string) => void, seconds: number): void {
  if (opts.json) {
    out(JSON.stringify({ out: res.outDir, skipped: res.skipped, summary: res.variants.map((v) => ({ loss: v.lossId, sampler: v.sampler, stats: v.stats })), claims: res.claims }, null, 2));
    return;
  }
  out(res.table);
  if (res.claims.length > 0) {
    out("");
    for (const l of claimLines(res.claims)) out(l);
  }
  out("");
  out(`${res.records.filter((r) => !r.concatenated).length} runs (${res.skipped.length} resumed) in ${formatDuration(seconds)}; results: ${res.outDir} (summary.md, report.html, results.json)`);
}
