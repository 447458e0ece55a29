import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import type { z } from "zod";
import { UnknownMethodError, ValidationError } from "../errors.ts";
import type { MethodInfo } from "../protocol/messages.ts";
import type { PluginChecks } from "./plugin-checks.ts";

/** Turns the first zod issue into a ValidationError naming the field and the allowed values. */
export function fromZodError(error: z.ZodError, root: string): ValidationError {
  const issue = error.issues[0];
  if (!issue) return new ValidationError(root, "invalid");
  const field = [root, ...issue.path.map(String)].join(".");
  const allowed = "values" in issue && Array.isArray(issue.values) ? (issue.values as unknown[]) : undefined;
  if (issue.code === "unrecognized_keys") {
    return new ValidationError(root, `unknown option(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`, { cause: error });
  }
  return new ValidationError(field, issue.message, { cause: error, ...(allowed ? { allowed } : {}) });
}

/**
 * One ajv set-up for every JSON Schema the runtime publishes in hello (method params, plugin
 * configs). pydantic writes JSON Schema 2020-12; `strict: false` lets ajv pass over keywords
 * it does not implement (pydantic's OpenAPI `discriminator`), which only annotate. With
 * `allErrors` every problem is collected (suite checks), else the first ends the check.
 */
export function compileSchema(schema: object, options: { allErrors?: boolean } = {}): ValidateFunction {
  return new Ajv2020({ strict: false, allErrors: options.allErrors ?? false, validateFormats: false }).compile(schema);
}

/** One schema error in a form both the runtime's ValidationError and suite reports use. */
export interface SchemaIssue {
  /** Instance path segments; for `required` and `additionalProperties` it ends with the property named. */
  path: string[];
  /** The JSON Schema keyword that failed (`enum`, `required`, `minimum`, ...). */
  keyword: string;
  /** Reads after the path: "is required", "is not a known parameter", ajv's text otherwise. */
  message: string;
  /** The values an `enum` or `const` allows. */
  allowed?: unknown[];
}

/** Translates one ajv error (the only place that reads ajv's error objects). */
export function schemaIssue(e: ErrorObject): SchemaIssue {
  const path = e.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  const p = e.params as Record<string, unknown>;
  const base = { path, keyword: e.keyword, message: e.message ?? "is invalid" };
  if (e.keyword === "enum" && Array.isArray(p.allowedValues)) return { ...base, allowed: p.allowedValues as unknown[] };
  if (e.keyword === "const") return { ...base, allowed: [p.allowedValue] };
  if (e.keyword === "required") return { ...base, path: [...path, String(p.missingProperty)], message: "is required" };
  if (e.keyword === "additionalProperties") return { ...base, path: [...path, String(p.additionalProperty)], message: "is not a known parameter" };
  return base;
}

/** The issue as one line with the allowed values written out: `must be one of "a", "b"`. */
export function issueText(i: SchemaIssue): string {
  if (!i.allowed) return i.message;
  const values = i.allowed.map((v) => JSON.stringify(v)).join(", ");
  return i.keyword === "const" ? `must be ${values}` : `must be one of ${values}`;
}

function errorToValidation(method: string, e: ErrorObject): ValidationError {
  const i = schemaIssue(e);
  return new ValidationError(["params", ...i.path].join("."), `${i.message} (method ${method})`, {
    context: { method, keyword: e.keyword, schemaPath: e.schemaPath },
    ...(i.allowed ? { allowed: i.allowed } : {}),
  });
}

/** Where a method's params name a sampler plugin, its config and a loss (checked against hello's plugins). */
const PLUGIN_FIELDS: Readonly<Record<string, { sampler: readonly string[]; config: readonly string[]; loss?: readonly string[] }>> = {
  train: { sampler: ["sampler", "name"], config: ["sampler", "config"], loss: ["loss", "name"] },
  mine: { sampler: ["sampler"], config: ["config"] },
  loss: { sampler: ["sampler"], config: ["config"], loss: ["loss"] },
};

function valueAt(params: unknown, path: readonly string[]): unknown {
  let v = params;
  for (const key of path) v = v && typeof v === "object" ? (v as Record<string, unknown>)[key] : undefined;
  return v;
}

/**
 * Checks call params against each method's JSON Schema from hello, before anything is sent,
 * and what they name among the plugins (sampler, its config, loss). Each schema is compiled
 * once, on first use. Params are checked in their wire form, tensors as `{"$tensor": i}`
 * placeholders.
 */
export class ParamsValidator {
  private readonly methods: Map<string, MethodInfo>;
  private readonly compiled = new Map<string, ValidateFunction | null>();

  constructor(
    methods: readonly MethodInfo[],
    private readonly plugins?: PluginChecks,
  ) {
    this.methods = new Map(methods.map((m) => [m.name, m]));
  }

  /** Names of the runtime's methods. */
  get names(): string[] {
    return [...this.methods.keys()].sort();
  }

  /** Throws UnknownMethodError for an unknown method. */
  checkMethod(method: string): void {
    if (!this.methods.has(method)) throw new UnknownMethodError(method, this.names);
  }

  /** Throws ValidationError naming the first bad field. */
  check(method: string, wireParams: unknown): void {
    this.checkMethod(method);
    const validate = this.get(method);
    if (validate && !validate(wireParams)) {
      const first = validate.errors?.[0];
      throw first ? errorToValidation(method, first) : new ValidationError("params", `invalid (method ${method})`);
    }
    const fields = PLUGIN_FIELDS[method];
    if (fields && this.plugins) this.checkPlugins(this.plugins, method, wireParams, fields);
  }

  /** A sampler left out takes the runtime's default, which the runtime checks itself. */
  private checkPlugins(plugins: PluginChecks, method: string, params: unknown, fields: (typeof PLUGIN_FIELDS)[string]): void {
    const sampler = valueAt(params, fields.sampler);
    if (typeof sampler !== "string") return;
    const field = (path: readonly string[]) => ["params", ...path].join(".");
    const unknown = plugins.samplerIssue(sampler);
    if (unknown) throw new ValidationError(field(fields.sampler), `${unknown} (method ${method})`);
    const [issue] = plugins.configIssues(sampler, valueAt(params, fields.config));
    if (issue) {
      throw new ValidationError(field([...fields.config, ...issue.path]), `${issue.message} (sampler ${sampler}, method ${method})`, {
        context: { method, sampler, keyword: issue.keyword },
        ...(issue.allowed ? { allowed: issue.allowed } : {}),
      });
    }
    const loss = fields.loss ? valueAt(params, fields.loss) : undefined;
    const lossIssue = fields.loss && typeof loss === "string" ? plugins.lossIssue(sampler, loss) : undefined;
    if (fields.loss && lossIssue) throw new ValidationError(field(fields.loss), `${lossIssue} (method ${method})`);
  }

  private get(method: string): ValidateFunction | null {
    let v = this.compiled.get(method);
    if (v === undefined) {
      const schema = this.methods.get(method)?.params_schema;
      // A method without a usable schema is checked by the runtime alone.
      try {
        v = schema && typeof schema === "object" ? compileSchema(schema) : null;
      } catch {
        v = null;
      }
      this.compiled.set(method, v);
    }
    return v;
  }
}
