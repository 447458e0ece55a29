/**
 * Command options declared once: a table of {@link OptionSpec}s gives both commander's flags
 * (with help and shown defaults) and the zod schema that checks commander's values.
 * @internal
 */
import { Option } from "commander";
import { z } from "zod";
import { RuntimeOptionsSchema, type RuntimeOptions } from "../runtime/options.ts";

/** One option: its commander flags and help, and the zod schema of its value. */
export interface OptionSpec<S extends z.ZodType = z.ZodType> {
  flags: string;
  help: string;
  schema: S;
  /** Set on a `Runtime.start` option: the value goes to the runtime under this key. */
  runtimeKey?: keyof RuntimeOptions;
}

/** A table of options; each key is the option's commander attribute name (`--dry-run`: dryRun). */
export type OptionTable = Record<string, OptionSpec>;

export const option = <S extends z.ZodType>(flags: string, help: string, schema: S): OptionSpec<S> => ({ flags, help, schema });

/** A `Runtime.start` option as a flag, checked by the runtime's own schema entry. */
export const runtimeOption = <K extends keyof typeof RuntimeOptionsSchema.shape>(key: K, flags: string, help: string): OptionSpec<(typeof RuntimeOptionsSchema.shape)[K]> => ({
  flags,
  help,
  schema: RuntimeOptionsSchema.shape[key],
  runtimeKey: key,
});

/** The strict zod object of a table: what commander's values are parsed with. */
export function schemaOf<T extends OptionTable>(table: T): z.ZodObject<{ [K in keyof T]: T[K]["schema"] }, z.core.$strict> {
  return z.object(Object.fromEntries(Object.entries(table).map(([k, o]) => [k, o.schema])) as { [K in keyof T]: T[K]["schema"] }).strict();
}

/** The commander options of a table; a default (shown in help) is the schema's, booleans aside. */
export function commanderOptions(table: OptionTable): Option[] {
  return Object.entries(table).map(([key, spec]) => {
    const opt = new Option(spec.flags, spec.help);
    if (opt.attributeName() !== key || (spec.runtimeKey !== undefined && spec.runtimeKey !== key)) throw new Error(`option ${spec.flags} is declared under "${key}"`);
    const fallback = spec.schema.safeParse(undefined);
    if (fallback.success && fallback.data !== undefined && typeof fallback.data !== "boolean") opt.default(fallback.data);
    return opt;
  });
}

/** The runtime options among parsed values (each already checked by its RuntimeOptionsSchema entry). */
export function runtimeOptionsOf(table: OptionTable, values: Readonly<Record<string, unknown>>): RuntimeOptions {
  const given: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) if (spec.runtimeKey !== undefined && values[key] !== undefined) given[spec.runtimeKey] = values[key];
  return given as RuntimeOptions;
}
