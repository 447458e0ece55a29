import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import type { z } from "zod";
import { UnknownMethodError, ValidationError } from "../errors.ts";
import type { MethodInfo } from "../protocol/messages.ts";

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

function errorToValidation(method: string, e: ErrorObject): ValidationError {
  const segs = e.instancePath.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  let field = ["params", ...segs].join(".");
  const p = e.params as Record<string, unknown>;
  let allowed: unknown[] | undefined;
  let message = e.message ?? "is invalid";
  if (e.keyword === "enum") allowed = p.allowedValues as unknown[];
  else if (e.keyword === "const") allowed = [p.allowedValue];
  else if (e.keyword === "required") {
    field = `${field}.${String(p.missingProperty)}`;
    message = "is required";
  } else if (e.keyword === "additionalProperties") {
    field = `${field}.${String(p.additionalProperty)}`;
    message = "is not a known parameter";
  }
  return new ValidationError(field, `${message} (method ${method})`, {
    context: { method, keyword: e.keyword, schemaPath: e.schemaPath },
    ...(allowed ? { allowed } : {}),
  });
}

/**
 * Checks call params against each method's JSON Schema from hello, before anything is sent.
 * Each schema is compiled once, on first use. Params are checked in their wire form, tensors
 * as `{"$tensor": i}` placeholders.
 */
export class ParamsValidator {
  private readonly methods: Map<string, MethodInfo>;
  private readonly compiled = new Map<string, ValidateFunction | null>();
  private readonly ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: false });

  constructor(methods: readonly MethodInfo[]) {
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
  }

  private get(method: string): ValidateFunction | null {
    let v = this.compiled.get(method);
    if (v === undefined) {
      const schema = this.methods.get(method)?.params_schema;
      // A method without a usable schema is checked by the runtime alone.
      try {
        v = schema && typeof schema === "object" ? this.ajv.compile(schema) : null;
      } catch {
        v = null;
      }
      this.compiled.set(method, v);
    }
    return v;
  }
}
