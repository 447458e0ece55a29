/**
 * Benchmark suites as data: the schema of a suite file (declared once, here), loading with
 * errors that name the file, the JSON path and the allowed values, and the expansion of a
 * suite into its run matrix (loss x sampler x seed).
 * @internal
 */
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { issueLine, jsonPath, SuiteError, type SuiteIssue } from "./suite-error.ts";
import { deepMerge, isPlainObject, resolveExtends, type SuiteSources } from "./suite-extends.ts";

export { deepMerge, issueLine, jsonPath, SuiteError, type SuiteIssue, type SuiteSources };

const jsonObject = z.record(z.string(), z.unknown());

/** One loss of a suite, with the sampler that is its usual recipe ("baseline"). */
export const LossEntrySchema = z
  .object({
    /** Loss name as the runtime knows it; the names a sampler accepts are its plugin's `losses` in hello. */
    name: z.string().min(1),
    /** Short id used in run ids and tables; defaults to the name. */
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "letters, digits, '.', '_' or '-'").optional(),
    /** Constructor kwargs of the loss. */
    config: jsonObject.default({}),
    /** The loss's usual positives sampler, the baseline the method is compared with. */
    baseline: z.string().min(1),
    /** Sampler config applied to every sampler of this loss (the negatives of the recipe). */
    sampler_config: jsonObject.default({}),
    /** The baseline's own sampler config, in place of `sampler_config` (e.g. the PML miner of the `pml-miner` sampler). */
    baseline_config: jsonObject.optional(),
    /** One line on the recipe, printed in reports. */
    recipe: z.string().optional(),
  })
  .strict();

const MetricName = z.string().regex(/^(coarse|fine)\.[a-z0-9@_]+$/, 'a metric like "fine.recall@1" or "coarse.map@r"');

/** The method's claim, checked against the measured numbers (never assumed). */
export const ClaimSchema = z
  .object({
    /** Sampler of the method. */
    method: z.string().min(1).default("nearest-positive"),
    /** Loss ids the claim is made for. */
    losses: z.array(z.string().min(1)).min(1),
    /** Metric that must improve, e.g. "fine.recall@1". */
    metric: MetricName,
    /** Smallest mean paired (per-seed) gain, in metric units (0.03 = 3 points of a fraction); its 95% interval must also lie above 0. */
    min_gain: z.number().nonnegative(),
    /** Metric that must not be lost: the 95% interval of its paired difference (method - baseline) reaches 0 or above. */
    guard: MetricName.optional(),
  })
  .strict();

/** MLRC-style model selection: class-disjoint k-fold cross-validation on the training classes. */
export const CrossValidationSchema = z
  .object({
    folds: z.int().min(2),
    split: z.enum(["class-disjoint"]).default("class-disjoint"),
    /** Metric of the validation fold that selects the checkpoint. */
    select_on: MetricName,
  })
  .strict();

const QuickSchema = z
  .object({
    /** Overrides merged into `train` with --quick. */
    train: jsonObject.default({}),
    seeds: z.array(z.int().nonnegative()).min(1).optional(),
  })
  .strict();

/** A suite file (benchmarks/suites/<name>.json). */
export const SuiteSchema = z
  .object({
    $schema: z.string().optional(),
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "lowercase letters, digits and '-'"),
    description: z.string().min(1),
    /** Which protocol the suite follows. */
    protocol: z.enum(["quick", "paper", "mlrc"]),
    /** Base TrainConfig for every run (docs/training.md); loss, sampler and seed are set per run. */
    train: jsonObject,
    losses: z.array(LossEntrySchema).min(1),
    /** Samplers run beside each loss's baseline. */
    samplers: z.array(z.string().min(1)).min(1).default(["nearest-positive"]),
    seeds: z.array(z.int().nonnegative()).min(1),
    quick: QuickSchema.optional(),
    /** 2-D projection of the test embeddings of one seed per run (the qualitative figure). */
    projection: z
      .object({ enabled: z.boolean().default(true), max_points: z.int().positive().default(1500) })
      .strict()
      .default({ enabled: true, max_points: 1500 }),
    claim: ClaimSchema.optional(),
    cross_validation: CrossValidationSchema.optional(),
    /** Wall-time budget in seconds the default invocation is expected to fit (documented, measured). */
    budget_s: z.number().positive().optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const ids = new Set<string>();
    s.losses.forEach((l, i) => {
      const id = l.id ?? lossId(l.name);
      if (ids.has(id)) ctx.addIssue({ code: "custom", path: ["losses", i, "id"], message: `duplicate loss id "${id}"` });
      ids.add(id);
    });
    if (s.claim) {
      s.claim.losses.forEach((id, i) => {
        if (!ids.has(id))
          ctx.addIssue({ code: "custom", path: ["claim", "losses", i], message: `unknown loss id "${id}"; allowed: ${[...ids].map((x) => JSON.stringify(x)).join(", ")}` });
      });
    }
    if (new Set(s.seeds).size !== s.seeds.length) ctx.addIssue({ code: "custom", path: ["seeds"], message: "seeds must be distinct" });
  });

export type Suite = z.infer<typeof SuiteSchema>;
export type LossEntry = z.infer<typeof LossEntrySchema>;
export type Claim = z.infer<typeof ClaimSchema>;

/** Sanitised id of a loss name ("pml:CircleLoss" -> "pml-CircleLoss"). */
export function lossId(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "-");
}

/** Folder holding the built-in suites. */
export const SUITES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "benchmarks", "suites");

/** Names of the built-in suites. */
export function listSuites(dir = SUITES_DIR): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => basename(f, ".json"))
    .sort();
}

/** Resolves a suite name or a path to a file path. */
export function suitePath(nameOrPath: string, dir = SUITES_DIR): string {
  if (nameOrPath.endsWith(".json") || nameOrPath.includes("/")) return resolve(nameOrPath);
  const p = join(dir, `${nameOrPath}.json`);
  if (!existsSync(p)) {
    throw new SuiteError(nameOrPath, [{ path: "$", message: `no such suite; built-in suites: ${listSuites(dir).join(", ") || "(none)"}` }]);
  }
  return p;
}

/** A suite as loaded: the resolved suite, its file, and the files it was resolved from. */
export interface LoadedSuite {
  suite: Suite;
  file: string;
  sources: SuiteSources;
}

/**
 * Parses and validates suite JSON text read from `file` (which names it in errors), resolving
 * `extends` relative to the file. An issue in a value from a base file names that file.
 */
export function parseSuite(text: string, file: string): Suite {
  return parseSuiteFile(text, file).suite;
}

function parseSuiteFile(text: string, file: string): LoadedSuite {
  const { raw, sources } = resolveExtends(file, text);
  const r = SuiteSchema.safeParse(raw);
  if (!r.success) {
    throw new SuiteError(
      file,
      r.error.issues.map((i) => {
        const owner = sources.fileOf(i.path);
        return { path: jsonPath(i.path), message: i.message, ...(owner !== file ? { file: owner } : {}) };
      }),
    );
  }
  return { suite: r.data, file, sources };
}

/** Loads a suite by built-in name or file path. */
export function loadSuite(nameOrPath: string, dir = SUITES_DIR): LoadedSuite {
  const file = suitePath(nameOrPath, dir);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new SuiteError(file, [{ path: "$", message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseSuiteFile(text, file);
}

/**
 * Replaces `${NAME}` and `${NAME:-default}` in every string of a config with the environment's
 * value (data roots and weight files differ per machine; the manifest records the result).
 */
export function expandEnv<T>(value: T, env: NodeJS.ProcessEnv = process.env): T {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, def: string | undefined) => env[name] ?? def ?? "") as T;
  }
  if (Array.isArray(value)) return value.map((v) => expandEnv(v, env)) as T;
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env)])) as T;
  return value;
}

/** One run of the matrix. */
export interface RunSpec {
  /** Stable id: <loss id>__<sampler>__s<seed>, with __f<fold> appended for a cross-validation fold. */
  id: string;
  /** Cross-validation: the held-out fold of this run (absent without cross-validation). */
  fold?: number;
  /** Cross-validation: the number of folds. */
  folds?: number;
  lossId: string;
  /** Index of the loss in suite.losses (-1: added from the command line). */
  lossIndex: number;
  sampler: string;
  /** Whether `sampler` is this loss's baseline. */
  baseline: boolean;
  /** The loss entry's field that `train.sampler.config` came from. */
  samplerConfigFrom: "sampler_config" | "baseline_config";
  seed: number;
  /** Full params of the runtime's `train` method. */
  train: Record<string, unknown>;
}

/** Command-line selections applied to a suite. */
export interface Selection {
  /** Keep only these losses (by id or name); a name not in the suite is added with its defaults and "all-positives" as baseline. */
  losses?: string[];
  /** Run exactly these samplers for every loss ("baseline" stands for each loss's own). */
  samplers?: string[];
  seeds?: number[];
  device?: "cpu" | "cuda" | "auto";
  /** Processes per run (`train.distributed.nproc_per_node`); 1 trains each run in one process. */
  nproc?: number;
  quick?: boolean;
}

/** Id of a cross-validation fold's run: the run id with "__f<fold>" appended. */
export function foldRunId(runId: string, fold: number): string {
  return `${runId}__f${fold}`;
}

/** The id of a fold run's (loss, sampler, seed) group: the run id without "__f<fold>". */
export function foldGroupOf(runId: string): string {
  return runId.replace(/__f\d+$/, "");
}

/**
 * One run per class-disjoint fold: fold k holds out the k-th fold of the training classes as
 * the runtime's "val" split and keeps the weights with the best `select_on` there
 * (`data.folds`, `data.fold`, `select_best`, `select_on` of docs/training.md).
 */
export function expandFolds(run: RunSpec, cv: Suite["cross_validation"]): RunSpec[] {
  if (!cv) return [run];
  return Array.from({ length: cv.folds }, (_, fold) => ({
    ...run,
    id: foldRunId(run.id, fold),
    fold,
    folds: cv.folds,
    train: deepMerge(run.train, { data: { folds: cv.folds, fold }, select_best: true, select_on: cv.select_on }),
  }));
}

/** The loss entry's field a sampler's config comes from: `baseline_config` for the baseline when given, else `sampler_config`. */
export function samplerConfigField(entry: LossEntry | undefined, sampler: string): RunSpec["samplerConfigFrom"] {
  return entry && sampler === entry.baseline && entry.baseline_config ? "baseline_config" : "sampler_config";
}

/** Expands a suite into its runs, in a stable order (loss, sampler, seed, fold). */
export function expandSuite(suite: Suite, sel: Selection = {}): RunSpec[] {
  let losses: { entry: LossEntry; index: number; id: string }[] = suite.losses.map((entry, index) => ({ entry, index, id: entry.id ?? lossId(entry.name) }));
  if (sel.losses && sel.losses.length > 0) {
    losses = sel.losses.map((want) => {
      const hit = losses.find((l) => l.id === want || l.entry.name === want);
      if (hit) return hit;
      const entry = LossEntrySchema.parse({ name: want, baseline: "all-positives" });
      return { entry, index: -1, id: lossId(want) };
    });
  }
  const seeds = sel.seeds ?? (sel.quick ? (suite.quick?.seeds ?? suite.seeds) : suite.seeds);
  let base = expandEnv(suite.train);
  if (sel.quick && suite.quick) base = deepMerge(base, expandEnv(suite.quick.train));
  if (sel.device) base = { ...base, device: sel.device };
  if (sel.nproc === 1) base = { ...base, distributed: null };
  else if (sel.nproc !== undefined) base = deepMerge(base, { distributed: { nproc_per_node: sel.nproc } });
  const runs: RunSpec[] = [];
  for (const l of losses) {
    const wanted = sel.samplers && sel.samplers.length > 0 ? sel.samplers.map((s) => (s === "baseline" ? l.entry.baseline : s)) : [l.entry.baseline, ...suite.samplers];
    const samplers = [...new Set(wanted)];
    for (const sampler of samplers) {
      for (const seed of seeds) {
        const samplerConfigFrom = samplerConfigField(l.entry, sampler);
        const train = deepMerge(base, {
          loss: { name: l.entry.name, config: l.entry.config },
          sampler: { name: sampler, config: l.entry[samplerConfigFrom] ?? {} },
          seed,
        });
        const run: RunSpec = { id: `${l.id}__${sampler}__s${seed}`, lossId: l.id, lossIndex: l.index, sampler, baseline: sampler === l.entry.baseline, samplerConfigFrom, seed, train };
        runs.push(...expandFolds(run, suite.cross_validation));
      }
    }
  }
  return runs;
}
