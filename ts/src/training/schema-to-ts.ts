/**
 * A small JSON Schema to TypeScript converter for the runtime's pydantic schemas.
 * Handles what pydantic emits: $ref/$defs, objects, arrays, anyOf/oneOf, enum/const and the
 * tensor placeholder (`{"$tensor": i}`, emitted as `Tensor`).
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

function doc(s: JsonSchema, indent: string): string {
  const parts: string[] = [];
  if (typeof s.description === "string") parts.push(s.description);
  if ("default" in s) parts.push(`@defaultValue ${JSON.stringify(s.default)}`);
  if (parts.length === 0) return "";
  return `${indent}/** ${parts.join(" ").replace(/\*\//g, "*\\/")} */\n`;
}

/** TypeScript type expression for a schema. */
export function typeOf(s: JsonSchema, indent = ""): string {
  if (typeof s.$ref === "string") return s.$ref.split("/").pop() as string;
  if (isTensor(s)) return "Tensor";
  if ("const" in s) return literal(s.const);
  if (Array.isArray(s.enum)) return s.enum.map(literal).join(" | ");
  const union = (s.anyOf ?? s.oneOf) as JsonSchema[] | undefined;
  if (union) return union.map((u) => typeOf(u, indent)).join(" | ");
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
