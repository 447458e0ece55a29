/**
 * A small JSON Schema to TypeScript converter for the runtime's pydantic schemas.
 * Handles what pydantic emits: $ref/$defs, objects, arrays, anyOf/oneOf, enum/const, the
 * tensor placeholder (`{"$tensor": i}`, emitted as `Tensor`, or `Tensor<"int64">` where the
 * schema names the dtype under `x-dtype`), and unions tagged by `kind`
 * written as `allOf` of `if`/`then` branches (config.py `TaggedUnion`): the union of the
 * `then` types.
 * @internal
 */

export type JsonSchema = { [key: string]: unknown };

function isTensor(s: JsonSchema): boolean {
  const props = s.properties as JsonSchema | undefined;
  const req = s.required as string[] | undefined;
  return s.type === "object" && !!props && Object.keys(props).length === 1 && "$tensor" in props && !!req?.includes("$tensor");
}

function literal(v: unknown): string {
  return JSON.stringify(v);
}

/** "1 to 65536"-style text of a schema's numeric bounds, or undefined. */
function bounds(s: JsonSchema): string | undefined {
  const lo = typeof s.minimum === "number" ? `${s.minimum}` : typeof s.exclusiveMinimum === "number" ? `> ${s.exclusiveMinimum}` : undefined;
  const hi = typeof s.maximum === "number" ? `${s.maximum}` : typeof s.exclusiveMaximum === "number" ? `< ${s.exclusiveMaximum}` : undefined;
  if (lo && hi) return `${lo.startsWith(">") ? lo : `>= ${lo}`}, ${hi.startsWith("<") ? hi : `<= ${hi}`}`;
  if (lo) return lo.startsWith(">") ? lo : `>= ${lo}`;
  if (hi) return hi.startsWith("<") ? hi : `<= ${hi}`;
  return undefined;
}

/** Bounds of a field (through `anyOf` with null, and of array items and lengths). */
function range(s: JsonSchema): string | undefined {
  const options = (s.anyOf as JsonSchema[] | undefined)?.filter((o) => o.type !== "null") ?? [s];
  const parts: string[] = [];
  for (const o of options) {
    const own = bounds(o);
    if (own) parts.push(own);
    const items = o.items as JsonSchema | undefined;
    const each = items ? bounds(items) : undefined;
    if (each) parts.push(`each ${each}`);
    if (typeof o.maxItems === "number") parts.push(`at most ${o.maxItems} items`);
  }
  return parts.length ? `Bounds: ${parts.join("; ")}.` : undefined;
}

function doc(s: JsonSchema, indent: string): string {
  const parts: string[] = [];
  if (typeof s.description === "string") parts.push(s.description);
  const r = range(s);
  if (r) {
    const last = parts.length - 1;
    if (last >= 0 && !parts[last]?.endsWith(".")) parts[last] = `${parts[last]}.`;
    parts.push(r);
  }
  if ("default" in s) parts.push(`@defaultValue ${JSON.stringify(s.default)}`);
  if (parts.length === 0) return "";
  return `${indent}/** ${parts.join(" ").replace(/\*\//g, "*\\/")} */\n`;
}

/** The `then` schemas of a union written as `allOf: [{if, then}, ...]`, else undefined. */
function taggedBranches(s: JsonSchema): JsonSchema[] | undefined {
  const all = s.allOf as JsonSchema[] | undefined;
  if (!Array.isArray(all) || all.length === 0) return undefined;
  const thens = all.map((b) => (b && typeof b === "object" && "if" in b ? (b.then as JsonSchema | undefined) : undefined));
  return thens.every((t): t is JsonSchema => t !== undefined) ? thens : undefined;
}

/** TypeScript type expression for a schema. */
export function typeOf(s: JsonSchema, indent = ""): string {
  if (typeof s.$ref === "string") return s.$ref.split("/").pop() as string;
  if (isTensor(s)) return typeof s["x-dtype"] === "string" ? `Tensor<${literal(s["x-dtype"])}>` : "Tensor";
  if ("const" in s) return literal(s.const);
  if (Array.isArray(s.enum)) return s.enum.map(literal).join(" | ");
  const union = (s.anyOf ?? s.oneOf) as JsonSchema[] | undefined;
  if (union) return union.map((u) => typeOf(u, indent)).join(" | ");
  const tagged = taggedBranches(s);
  if (tagged) return tagged.map((u) => typeOf(u, indent)).join(" | ");
  switch (s.type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array": {
      const items = s.items as JsonSchema | undefined;
      const inner = items ? typeOf(items, indent) : "unknown";
      return /[|&]/.test(inner) ? `Array<${inner}>` : `${inner}[]`;
    }
    case "object": {
      const props = s.properties as Record<string, JsonSchema> | undefined;
      if (!props) {
        const ap = s.additionalProperties;
        return ap && typeof ap === "object" ? `Record<string, ${typeOf(ap as JsonSchema, indent)}>` : "Record<string, unknown>";
      }
      return objectBody(s, indent);
    }
    default:
      return "unknown";
  }
}

function objectBody(s: JsonSchema, indent: string): string {
  const props = (s.properties ?? {}) as Record<string, JsonSchema>;
  const req = new Set((s.required ?? []) as string[]);
  const inner = indent + "  ";
  const lines = Object.entries(props).map(([k, v]) => {
    const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k);
    return `${doc(v, inner)}${inner}${key}${req.has(k) ? "" : "?"}: ${typeOf(v, inner)};`;
  });
  return `{\n${lines.join("\n")}\n${indent}}`;
}

/** One `export interface`/`export type` per named schema, in a stable order. */
export function declarations(named: Map<string, JsonSchema>): string {
  const out: string[] = [];
  for (const name of [...named.keys()].sort()) {
    const s = named.get(name) as JsonSchema;
    const d = doc(s, "");
    if (s.type === "object" && s.properties && !isTensor(s)) out.push(`${d}export interface ${name} ${objectBody(s, "")}`);
    else out.push(`${d}export type ${name} = ${typeOf(s)};`);
  }
  return out.join("\n\n");
}

/** `StepEvent` for the event type `step`. */
export function eventTypeName(type: string): string {
  return `${type.replace(/(^|[_:-])(\w)/g, (_m, _sep: string, c: string) => c.toUpperCase())}Event`;
}

/**
 * One interface per event type (`{ type, seq, data }`, data of the named type) and one union
 * per method.
 * @param events - event type -> name of its data type
 * @param unions - union name -> the event types it holds
 */
export function eventDeclarations(events: Map<string, string>, unions: Map<string, string[]>): string {
  const out: string[] = [];
  for (const type of [...events.keys()].sort()) {
    out.push(
      [
        `/** \`${type}\` event: see {@link ${events.get(type)}}. */`,
        `export interface ${eventTypeName(type)} {`,
        `  type: ${literal(type)};`,
        "  /** Position of this event in its call: 0, 1, 2 ... */",
        "  seq: number;",
        `  data: ${events.get(type)};`,
        "}",
      ].join("\n"),
    );
  }
  for (const [name, types] of [...unions.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    out.push(`/** Events of a call, discriminated on \`type\`. */\nexport type ${name} = ${types.map(eventTypeName).join(" | ")};`);
    const constName = name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
    out.push(`/** The \`type\`s of {@link ${name}}. */\nexport const ${constName}_TYPES: readonly ${name}["type"][] = ${JSON.stringify(types)};`);
  }
  return out.join("\n\n");
}
