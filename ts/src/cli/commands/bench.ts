/**
 * `nearpos bench`: runs a benchmark suite (default `mnist-coarse`) and writes its results
 * folder; `--dry-run` validates a suite without data; `--list` lists the built-in suites.
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
import { runSuite } from "../../bench/runner.ts";
import { expandSuite, listSuites, loadSuite, lossId, samplerConfigField, SuiteError, SuiteSchema, type RunSpec, type Suite } from "../../bench/suite.ts";
import type { BenchBackend } from "../../bench/types.ts";
import { checkDataPaths, compileTrainSchema, validateLosses, validateRuns, validateSamplers } from "../../bench/validate.ts";
import { CliExit, EXIT, type CliIO } from "../io.ts";
import { compareCommand } from "./compare.ts";

/** "3" means seeds 0, 1, 2; "0,5,9" means exactly those. */
const SeedsSchema = z
  .string()
  .regex(/^\d+(,\d+)*$/, 'a count ("3") or a comma-separated list ("0,1,2")')
  .transform((s) => (s.includes(",") ? s.split(",").map(Number) : Array.from({ length: Number(s) }, (_, i) => i)))
  .refine((xs) => xs.length > 0 && new Set(xs).size === xs.length, "at least one seed, all distinct");

/** Options of `nearpos bench`. */
export const BenchOptionsSchema = z
  .object({
    suite: z.string().min(1).default("mnist-coarse"),
    list: z.boolean().default(false),
    loss: z.array(z.string().min(1)).optional(),
    sampler: z.array(z.string().min(1)).optional(),
    seeds: SeedsSchema.optional(),
    device: z.enum(["cpu", "cuda", "auto"]).optional(),
    quick: z.boolean().default(false),
    out: z.string().min(1).optional(),
    resume: z.boolean().default(false),
    dryRun: z.boolean().default(false),
    fromManifest: z.string().min(1).optional(),
    json: z.boolean().default(false),
    python: z.string().min(1).optional(),
    progress: z.boolean().default(true),
  })
  .strict();
export type BenchOptions = z.infer<typeof BenchOptionsSchema>;

/** Starts the backend a command uses; tests may swap in another runtime start. */
export type BackendFactory = (python?: string) => Promise<BenchBackend>;

function timestamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
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

/** Validates every run against the runtime's `train` schema; throws SuiteError naming the suite fields. */
function validateAgainstRuntime(backend: BenchBackend, file: string, runs: RunSpec[]): void {
  const train = backend.hello.methods.find((m) => m.name === "train");
  if (!train) throw new CliExit(EXIT.failure, `error: the runtime has no "train" method (methods: ${backend.hello.methods.map((m) => m.name).join(", ")})`);
  const plugins = backend.hello.plugins;
  if (runs.some((r) => r.train.device === "cuda") && !backend.hello.devices.some((d) => d.type === "cuda")) {
    throw new CliExit(EXIT.usage, `error: device "cuda" requested but the runtime sees no CUDA device (devices: ${backend.hello.devices.map((d) => d.type).join(", ")}); use --device cpu or auto`);
  }
  const issues = [...(train.params_schema ? validateRuns(compileTrainSchema(train.params_schema), runs) : []), ...validateSamplers(plugins, runs), ...validateLosses(plugins, runs)];
  if (issues.length > 0) throw new SuiteError(file, issues.map((i) => ({ path: i.path, message: `${i.message} (run ${i.run})` })));
}

/** Builds the `bench` command (with its `compare` subcommand). */
export function benchCommand(io: CliIO, setExit: (code: number) => void, startBackend: BackendFactory): Command {
  const cmd = new Command("bench")
    .description("run a benchmark suite and write manifest, metrics, summary and report")
    .option("--suite <name>", "built-in suite name or path of a suite file", "mnist-coarse")
    .option("--list", "list the built-in suites")
    .option("--loss <names...>", "run only these losses (ids or names)")
    .option("--sampler <names...>", 'run exactly these samplers for every loss ("baseline": the loss\'s own)')
    .option("--seeds <n|list>", 'number of seeds ("3") or a list ("0,1,2")')
    .option("--device <device>", "cpu, cuda or auto")
    .option("--quick", "the suite's quick settings (fewer steps or seeds)")
    .option("--out <dir>", "results folder (default results/<suite>-<timestamp>)")
    .option("--resume", "skip runs already finished in --out")
    .option("--dry-run", "validate the suite and every run config, check data paths; train nothing")
    .option("--from-manifest <file>", "rerun exactly the runs of a manifest.json (or a results folder)")
    .option("--python <path>", "Python interpreter of the runtime")
    .option("--no-progress", "no progress bar")
    .option("--json", "machine-readable output on stdout")
    .action(async (raw: Record<string, unknown>) => {
      const opts = BenchOptionsSchema.parse(raw);
      setExit(await bench(opts, io, startBackend));
    });
  cmd.addCommand(compareCommand(io, setExit));
  return cmd;
}

/** The body of `nearpos bench`; returns the exit code. */
export async function bench(opts: BenchOptions, io: CliIO, startBackend: BackendFactory): Promise<number> {
  const out = (s: string) => io.stdout.write(`${s}\n`);
  if (opts.list) {
    const rows = listSuites().map((name) => {
      const { suite } = loadSuite(name);
      return { name, protocol: suite.protocol, runs: expandSuite(suite).length, description: suite.description };
    });
    if (opts.json) out(JSON.stringify(rows, null, 2));
    else for (const r of rows) out(`${r.name.padEnd(22)} ${r.protocol.padEnd(6)} ${String(r.runs).padStart(4)} runs  ${r.description.split(/[:.](\s|$)/)[0]}`);
    return EXIT.ok;
  }

  let suite: Suite;
  let file: string;
  let runs: RunSpec[];
  if (opts.fromManifest) {
    const m = loadManifest(opts.fromManifest);
    suite = m.suite;
    file = resolve(opts.fromManifest);
    runs = m.runs.map((r) => {
      const lossIndex = suite.losses.findIndex((l) => (l.id ?? lossId(l.name)) === r.lossId);
      const samplerConfigFrom = samplerConfigField(suite.losses[lossIndex], r.sampler);
      return { id: r.id, lossId: r.lossId, lossIndex, sampler: r.sampler, baseline: r.baseline, samplerConfigFrom, seed: r.seed, train: r.train };
    });
  } else {
    const loaded = loadSuite(opts.suite);
    suite = loaded.suite;
    file = loaded.file;
    runs = expandSuite(suite, { losses: opts.loss, samplers: opts.sampler, seeds: opts.seeds, device: opts.device, quick: opts.quick });
  }

  const backend = await startBackend(opts.python);
  try {
    if (opts.dryRun) {
      let problems: { path: string; message: string }[] = [];
      try {
        validateAgainstRuntime(backend, file, runs);
      } catch (e) {
        if (!(e instanceof SuiteError)) throw e;
        problems = [...e.issues];
      }
      const paths = checkDataPaths(suite);
      const report = { suite: suite.name, file, runs: runs.map((r) => r.id), valid: problems.length === 0, problems, data_paths: paths, cross_validation: suite.cross_validation ?? null };
      if (opts.json) out(JSON.stringify(report, null, 2));
      else {
        out(`suite ${suite.name} (${file}): ${runs.length} runs`);
        for (const r of runs) out(`  ${r.id}`);
        for (const p of paths) out(`data path ${p.field} = ${p.path}: ${p.exists ? "present" : "MISSING"}`);
        if (suite.cross_validation) out(`cross-validation: ${suite.cross_validation.folds} ${suite.cross_validation.split} folds, model selection on ${suite.cross_validation.select_on}; reported: fold mean and concatenated (${suite.cross_validation.folds} x d)`);
        if (problems.length === 0) out("all run configs are valid for this runtime");
        else {
          out(`invalid: ${file}`);
          for (const p of problems) out(`  ${p.path}: ${p.message}`);
        }
      }
      return problems.length === 0 ? EXIT.ok : EXIT.usage;
    }

    validateAgainstRuntime(backend, file, runs);
    const missing = checkDataPaths(suite).filter((p) => !p.exists);
    if (missing.length > 0) throw new CliExit(EXIT.usage, `error: data not found: ${missing.map((p) => `${p.field} = ${p.path}`).join(", ")}`);
    const outDir = resolve(opts.out ?? join("results", `${suite.name}-${timestamp()}${opts.fromManifest ? "-repro" : ""}`));
    if (opts.resume && !opts.out) throw new CliExit(EXIT.usage, "error: --resume needs --out <dir> (the folder to resume)");
    const progress = new Progress({ stream: io.stderr, silent: !opts.progress });
    progress.log(`nearpos bench: suite ${suite.name}, ${runs.length} runs -> ${outDir}`);
    if (suite.cross_validation) {
      const cv = suite.cross_validation;
      progress.log(`cross-validation: ${cv.folds} class-disjoint folds per run, model selection on validation ${cv.select_on}; reported: the mean over folds and the folds' concatenated embedding (${cv.folds} x d)`);
    }
    const t0 = performance.now();
    const res = await runSuite({
      suite,
      suiteFile: file,
      runs,
      outDir,
      backend,
      resume: opts.resume,
      progress,
      selection: { loss: opts.loss ?? null, sampler: opts.sampler ?? null, seeds: opts.seeds ?? null, device: opts.device ?? null, quick: opts.quick, from_manifest: opts.fromManifest ?? null },
      command: ["nearpos", ...process.argv.slice(2)],
    });
    if (opts.json) {
      out(JSON.stringify({ out: res.outDir, skipped: res.skipped, summary: res.variants.map((v) => ({ loss: v.lossId, sampler: v.sampler, stats: v.stats })), claims: res.claims }, null, 2));
    } else {
      out(res.table);
      if (res.claims.length > 0) {
        out("");
        for (const l of claimLines(res.claims)) out(l);
      }
      out("");
      out(`${res.records.filter((r) => !r.concatenated).length} runs (${res.skipped.length} resumed) in ${formatDuration((performance.now() - t0) / 1000)}; results: ${res.outDir} (summary.md, report.html, results.json)`);
    }
    return EXIT.ok;
  } finally {
    await backend.close();
  }
}

/** The default backend: a real runtime process. */
export const defaultBackend: BackendFactory = (python) => RuntimeBackend.start(python ? { python } : {});
