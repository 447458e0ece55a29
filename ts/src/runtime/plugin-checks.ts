/**
 * What a call or a suite names among the runtime's plugins (hello `plugins`): the sampler must
 * be a loaded plugin, its config must follow that plugin's `config_schema`, and the loss must
 * be one the plugin lists. One set of checks for the runtime's calls (before anything is sent)
 * and for suite checks (`nearpos bench`); the runtime checks the same again.
 * @internal
 */
import type { ValidateFunction } from "ajv";
import { compileSchema, schemaIssue, type SchemaIssue } from "./validate.ts";

/** The parts of a hello plugin entry these checks read. */
export interface PluginSummary {
  name: string;
  config_schema?: unknown;
  /** Loss names the plugin accepts; an entry ending in "*" is a prefix pattern ("pml:*"). */
  losses?: readonly string[];
}

/** Whether `name` is one of `known`, where an entry ending in "*" matches any name with that prefix. */
export function lossKnown(name: string, known: readonly string[]): boolean {
  return known.some((k) => (k.endsWith("*") ? name.startsWith(k.slice(0, -1)) : k === name));
}

function quoted(values: readonly string[]): string {
  return values.map((v) => JSON.stringify(v)).join(", ");
}

export class PluginChecks {
  private readonly compiled = new Map<string, ValidateFunction | null>();

  /** `allErrors`: collect every config problem (suite reports), else stop at the first. */
  constructor(
    readonly plugins: readonly PluginSummary[],
    private readonly options: { allErrors?: boolean } = {},
  ) {}

  find(sampler: string): PluginSummary | undefined {
    return this.plugins.find((p) => p.name === sampler);
  }

  /** Why `sampler` is not a loaded plugin, or undefined when it is. */
  samplerIssue(sampler: string): string | undefined {
    if (this.find(sampler)) return undefined;
    return `unknown sampler "${sampler}"; must be one of ${quoted(this.plugins.map((p) => p.name))}`;
  }

  /** Problems of `config` under the plugin's `config_schema` (none for an unknown plugin or one without a schema). */
  configIssues(sampler: string, config: unknown): SchemaIssue[] {
    const validate = this.validator(sampler);
    if (!validate || validate(config ?? {})) return [];
    return (validate.errors ?? []).map(schemaIssue);
  }

  /** Why `loss` is not one of the losses `sampler` lists, or undefined (also when it lists none). */
  lossIssue(sampler: string, loss: string): string | undefined {
    const known = this.find(sampler)?.losses;
    if (!known || lossKnown(loss, known)) return undefined;
    return `unknown loss "${loss}" for sampler "${sampler}"; known losses: ${quoted(known)}`;
  }

  private validator(sampler: string): ValidateFunction | null {
    let v = this.compiled.get(sampler);
    if (v === undefined) {
      const schema = this.find(sampler)?.config_schema;
      // A schema ajv cannot compile is left to the runtime's own check.
      try {
        v = schema && typeof schema === "object" ? compileSchema(schema, this.options) : null;
      } catch {
        v = null;
      }
      this.compiled.set(sampler, v);
    }
    return v;
  }
}
