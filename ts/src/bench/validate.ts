/**
 * Checks every run config of a suite against the runtime's own `train` params schema (from
 * hello), so a mistake is reported before anything trains, naming the suite file, the JSON
 * path in it and the allowed values.
 * @internal
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { expandEnv, jsonPath, type RunSpec, type Suite } from "./suite.ts";

/** Pydantic writes `discriminator.mapping`, which ajv does not support: drop it (the tag's `const` decides). */
function stripMappings(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(stripMappings);
  if (typeof schema !== "object" || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "discriminator" && typeof v === "object" && v !== null) {
      // ajv's discriminator needs each branch to declare the tag inline; keep validation via oneOf instead.
      continue;
    }
    out[k] = stripMappings(v);
  }
  return out;
}

/** Compiles the runtime's params schema of `train`. */
export function compileTrainSchema(schema: unknown): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false, verbose: true });
  return ajv.compile(stripMappings(schema) as object);
}

/** Where in the suite file a field of a run's train config comes from. */
function suiteLocation(run: RunSpec, pointer: string[]): string {
  const [head, ...rest] = pointer;
  if (run.lossIndex >= 0 && head === "loss") {
    const field = rest[0] === "name" ? ["name"] : rest[0] === "config" ? ["config", ...rest.slice(1)] : rest;
    return jsonPath(["losses", run.lossIndex, ...field]);
  }
  if (head === "sampler") {
    if (rest[0] === "name") return run.baseline && run.lossIndex >= 0 ? jsonPath(["losses", run.lossIndex, "baseline"]) : jsonPath(["samplers"]);
    if (rest[0] === "config" && run.lossIndex >= 0) return jsonPath(["losses", run.lossIndex, run.samplerConfigFrom, ...rest.slice(1)]);
  }
  if (head === "seed") return jsonPath(["seeds"]);
  return jsonPath(["train", ...pointer]);
}

function describeAjvError(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  if (e.keyword === "enum" && Array.isArray(p.allowedValues)) return `must be one of ${p.allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
  if (e.keyword === "const") return `must be ${JSON.stringify(p.allowedValue)}`;
  if (e.keyword === "additionalProperties") return `unknown field "${String(p.additionalProperty)}"`;
  if (e.keyword === "required") return `missing required field "${String(p.missingProperty)}"`;
  return e.message ?? e.keyword;
}

function parentOf(ptr: string): string {
  return ptr.replace(/\/[^/]*$/, "");
}

/** A problem found in one run's config. */
export interface RunIssue {
  run: string;
  path: string;
  message: string;
}

/**
 * Validates every run's train config. Errors under a union are reduced to the branch that
 * matches the discriminating `kind`/`name` when one does, so messages stay short.
 */
export function validateRuns(validate: ValidateFunction, runs: readonly RunSpec[]): RunIssue[] {
  const issues: RunIssue[] = [];
  const seen = new Set<string>();
  for (const run of runs) {
    if (validate(run.train)) continue;
    const errors = (validate.errors ?? []).filter((e) => e.keyword !== "oneOf" && e.keyword !== "anyOf" && e.keyword !== "if");
    // A union of kinds (data.kind, model.kind, ...) fails in every branch. Branches are told apart by
    // the $defs entry in each error's schema path: a branch that rejected the tag is not the user's
    // branch. If every branch rejected the tag, report the tag with all allowed values; otherwise keep
    // only the errors of the branch(es) that accepted it.
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
    for (const e of useful.length > 0 ? useful : errors) {
      const ptr = e.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
      if (e.keyword === "additionalProperties") ptr.push(String((e.params as Record<string, unknown>).additionalProperty));
      const path = suiteLocation(run, ptr);
      const message = describeAjvError(e);
      const key = `${path}|${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      issues.push({ run: run.id, path, message });
    }
  }
  return issues;
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
export function validateSamplers(plugins: readonly { name: string; config_schema?: unknown }[], runs: readonly RunSpec[]): RunIssue[] {
  const issues: RunIssue[] = [];
  const compiled = new Map<string, ValidateFunction>();
  const seen = new Set<string>();
  const names = plugins.map((p) => JSON.stringify(p.name)).join(", ");
  for (const run of runs) {
    const plugin = plugins.find((p) => p.name === run.sampler);
    const push = (ptr: string[], message: string) => {
      const path = suiteLocation(run, ptr);
      if (seen.has(`${path}|${message}`)) return;
      seen.add(`${path}|${message}`);
      issues.push({ run: run.id, path, message });
    };
    if (!plugin) {
      push(["sampler", "name"], `unknown sampler "${run.sampler}"; must be one of ${names}`);
      continue;
    }
    if (!plugin.config_schema) continue;
    let v = compiled.get(plugin.name);
    if (!v) {
      v = compileTrainSchema(plugin.config_schema);
      compiled.set(plugin.name, v);
    }
    const cfg = (run.train.sampler as { config?: unknown } | undefined)?.config ?? {};
    if (v(cfg)) continue;
    for (const e of v.errors ?? []) {
      const ptr = ["sampler", "config", ...e.instancePath.split("/").slice(1)];
      if (e.keyword === "additionalProperties") ptr.push(String((e.params as Record<string, unknown>).additionalProperty));
      push(ptr, describeAjvError(e));
    }
  }
  return issues;
}

/** Whether `name` is one of `known`, where an entry ending in "*" matches any name with that prefix. */
export function lossKnown(name: string, known: readonly string[]): boolean {
  return known.some((k) => (k.endsWith("*") ? name.startsWith(k.slice(0, -1)) : k === name));
}

/**
 * Checks each run's loss name against the losses its sampler plugin reports in hello
 * (`plugins[].losses`). A plugin that reports no list is not checked. `pml:<Class>` names pass
 * when the plugin lists the pattern "pml:*" (pytorch-metric-learning installed); the class
 * name itself is then checked by the runtime's `train`.
 */
export function validateLosses(plugins: readonly { name: string; losses?: readonly string[] }[], runs: readonly RunSpec[]): RunIssue[] {
  const issues: RunIssue[] = [];
  const seen = new Set<string>();
  for (const run of runs) {
    const known = plugins.find((p) => p.name === run.sampler)?.losses;
    const name = (run.train.loss as { name?: unknown } | undefined)?.name;
    if (!known || typeof name !== "string" || lossKnown(name, known)) continue;
    const path = suiteLocation(run, ["loss", "name"]);
    const message = `unknown loss "${name}" for sampler "${run.sampler}"; known losses: ${known.map((k) => JSON.stringify(k)).join(", ")}`;
    // One issue per suite location and name, though every sampler of the loss repeats it.
    if (seen.has(`${path}|${name}`)) continue;
    seen.add(`${path}|${name}`);
    issues.push({ run: run.id, path, message });
  }
  return issues;
}
