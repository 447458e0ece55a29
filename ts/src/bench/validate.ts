/**
 * Checks every run config of a suite against the runtime's own `train` params schema (from
 * hello), so a mistake is reported before anything trains, naming the suite file, the JSON
 * path in it and the allowed values.
 * @internal
 */
import type { ErrorObject, ValidateFunction } from "ajv";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { PluginChecks, type PluginSummary } from "../runtime/plugin-checks.ts";
import { compileSchema, issueText, schemaIssue, type SchemaIssue } from "../runtime/validate.ts";
import { expandEnv, jsonPath, type RunSpec, type Suite } from "./suite.ts";

/** Compiles a schema from the runtime's hello for suite checks (every error collected). */
export function compileTrainSchema(schema: unknown): ValidateFunction {
  return compileSchema(schema as object, { allErrors: true });
}

/** A problem found in one run's config. */
export interface RunIssue {
  run: string;
  /** JSON path in the suite, e.g. `$.losses[0].baseline`. */
  path: string;
  /** The same path as segments (to find which file of an `extends` chain holds it). */
  location: (string | number)[];
  message: string;
}

/** Where in the suite a field of a run's train config comes from, as JSON path segments. */
function suiteLocation(run: RunSpec, pointer: readonly string[]): (string | number)[] {
  // Array indices arrive as strings from JSON pointers: "ks/0" is $.train.eval.ks[0].
  const [head, ...rest] = pointer.map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  if (run.lossIndex >= 0 && head === "loss") {
    const field = rest[0] === "name" ? ["name"] : rest[0] === "config" ? ["config", ...rest.slice(1)] : rest;
    return ["losses", run.lossIndex, ...field];
  }
  if (head === "sampler") {
    if (rest[0] === "name") return run.baseline && run.lossIndex >= 0 ? ["losses", run.lossIndex, "baseline"] : ["samplers"];
    if (rest[0] === "config" && run.lossIndex >= 0) return ["losses", run.lossIndex, run.samplerConfigFrom, ...rest.slice(1)];
  }
  if (head === "seed") return ["seeds"];
  return ["train", ...(head === undefined ? [] : [head]), ...rest];
}

/** Collects issues, one per suite location and message (every run of a loss repeats its mistakes). */
class IssueList {
  readonly issues: RunIssue[] = [];
  private readonly seen = new Set<string>();

  add(run: RunSpec, pointer: readonly string[], message: string, key = message): void {
    const location = suiteLocation(run, pointer);
    const path = jsonPath(location);
    if (this.seen.has(`${path}|${key}`)) return;
    this.seen.add(`${path}|${key}`);
    this.issues.push({ run: run.id, path, location, message });
  }

  addSchemaIssue(run: RunSpec, i: SchemaIssue, prefix: readonly string[] = []): void {
    this.add(run, [...prefix, ...i.path], issueText(i));
  }
}

function parentOf(ptr: string): string {
  return ptr.replace(/\/[^/]*$/, "");
}

/**
 * Reduces the errors of a failed union of kinds (data.kind, model.kind, ...) to the user's
 * branch. Every branch fails; branches are told apart by the $defs entry in each error's
 * schema path, and a branch that rejected the tag is not the user's. If every branch rejected
 * the tag, the tag is reported with all allowed values; otherwise only the errors of the
 * branch(es) that accepted it are kept.
 */
function usefulErrors(all: readonly ErrorObject[]): ErrorObject[] {
  const errors = all.filter((e) => e.keyword !== "oneOf" && e.keyword !== "anyOf" && e.keyword !== "if");
  const defOf = (e: ErrorObject) => /#\/\$defs\/([^/]+)/.exec(e.schemaPath)?.[1];
  const tagErrors = errors.filter((e) => (e.keyword === "const" || e.keyword === "enum") && errors.some((o) => o.keyword === "const" && o.instancePath === e.instancePath));
  const tags = new Map<string, { allowed: unknown[]; rejecting: Set<string> }>();
  for (const e of tagErrors) {
    const t = tags.get(e.instancePath) ?? { allowed: [], rejecting: new Set<string>() };
    const p = e.params as Record<string, unknown>;
    if (e.keyword === "const") t.allowed.push(p.allowedValue);
    else if (Array.isArray(p.allowedValues)) t.allowed.push(...p.allowedValues);
    const d = defOf(e);
    if (d) t.rejecting.add(d);
    tags.set(e.instancePath, t);
  }
  const useful: ErrorObject[] = [];
  const drop = new Set<ErrorObject>(tagErrors);
  for (const [ptr, t] of tags) {
    const parent = parentOf(ptr);
    const under = errors.filter((e) => !drop.has(e) && (e.instancePath === parent || e.instancePath.startsWith(`${parent}/`)));
    const accepted = under.filter((e) => {
      const d = defOf(e);
      return d !== undefined && !t.rejecting.has(d);
    });
    if (accepted.length === 0) {
      useful.push({ keyword: "enum", instancePath: ptr, schemaPath: "", params: { allowedValues: t.allowed } } as ErrorObject);
      for (const e of under) drop.add(e);
    } else {
      for (const e of under) if (!accepted.includes(e)) drop.add(e);
    }
  }
  for (const e of errors) if (!drop.has(e)) useful.push(e);
  return useful.length > 0 ? useful : errors;
}

/** Validates every run's train config; errors under a union are reduced to the user's branch. */
export function validateRuns(validate: ValidateFunction, runs: readonly RunSpec[]): RunIssue[] {
  const list = new IssueList();
  for (const run of runs) {
    if (validate(run.train)) continue;
    for (const e of usefulErrors(validate.errors ?? [])) list.addSchemaIssue(run, schemaIssue(e));
  }
  return list.issues;
}

/** A local data path named by a suite, and whether it exists here. */
export interface DataPathCheck {
  path: string;
  field: string;
  exists: boolean;
}

/** Data paths (`train.data.root`, `.dir`, model `weights`) named by the suite, checked for presence only. */
export function checkDataPaths(suite: Suite): DataPathCheck[] {
  const out: DataPathCheck[] = [];
  const train = expandEnv(suite.train);
  const data = train.data as Record<string, unknown> | undefined;
  const model = train.model as Record<string, unknown> | undefined;
  const fields: [string, unknown][] = [
    ["$.train.data.root", data?.root],
    ["$.train.data.dir", data?.dir],
    ["$.train.model.weights", model?.weights],
  ];
  for (const [field, v] of fields) {
    if (typeof v !== "string" || v.length === 0) continue;
    const p = resolve(v);
    out.push({ path: p, field, exists: existsSync(p) });
  }
  return out;
}

/**
 * Checks each run's sampler against the runtime's plugins: the name must be a loaded plugin
 * and its config must follow that plugin's `config_schema` (both from hello).
 */
export function validateSamplers(plugins: readonly PluginSummary[], runs: readonly RunSpec[]): RunIssue[] {
  const list = new IssueList();
  const checks = new PluginChecks(plugins, { allErrors: true });
  for (const run of runs) {
    const unknown = checks.samplerIssue(run.sampler);
    if (unknown) {
      list.add(run, ["sampler", "name"], unknown);
      continue;
    }
    const cfg = (run.train.sampler as { config?: unknown } | undefined)?.config;
    for (const i of checks.configIssues(run.sampler, cfg)) list.addSchemaIssue(run, i, ["sampler", "config"]);
  }
  return list.issues;
}

/**
 * Checks each run's loss name against the losses its sampler plugin reports in hello
 * (`plugins[].losses`). A plugin that reports no list is not checked. `pml:<Class>` names pass
 * when the plugin lists the pattern "pml:*" (pytorch-metric-learning installed); the class
 * name itself is then checked by the runtime's `train`.
 */
export function validateLosses(plugins: readonly PluginSummary[], runs: readonly RunSpec[]): RunIssue[] {
  const list = new IssueList();
  const checks = new PluginChecks(plugins);
  for (const run of runs) {
    const name = (run.train.loss as { name?: unknown } | undefined)?.name;
    const issue = typeof name === "string" ? checks.lossIssue(run.sampler, name) : undefined;
    // One issue per suite location and name, though every sampler of the loss repeats it.
    if (issue && typeof name === "string") list.add(run, ["loss", "name"], issue, name);
  }
  return list.issues;
}
