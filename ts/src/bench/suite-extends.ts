/**
 * `extends` in suite files: a suite names a base file (a path relative to itself) and gives
 * only what differs. Objects merge deeply, arrays and scalars replace; a base may extend
 * another. The result is one plain suite object (the `extends` keys removed), and the files
 * it came from, so an error names the file that holds the faulty value.
 * @internal
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { SuiteError } from "./suite-error.ts";

/** Recursive merge of plain objects; arrays and scalars of `b` replace those of `a`. */
export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isPlainObject(prev) && isPlainObject(v) ? deepMerge(prev, v) : v;
  }
  return out;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The files a suite was resolved from. */
export interface SuiteSources {
  /** The suite's own file first, then each base in `extends` order. */
  readonly files: readonly string[];
  /** The file that gives the value at a JSON path of the resolved suite. */
  fileOf(path: readonly PropertyKey[]): string;
}

interface Layer {
  file: string;
  raw: Record<string, unknown>;
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SuiteError(file, [{ path: "$", message: `not valid JSON: ${(e as Error).message}` }]);
  }
}

/** The base file a layer extends, checked: present, and not already in the chain. */
function baseOf(layer: Layer, chain: readonly string[]): string | undefined {
  const ext = layer.raw.extends;
  if (ext === undefined) return undefined;
  if (typeof ext !== "string" || ext.length === 0) throw new SuiteError(layer.file, [{ path: "$.extends", message: "must be the path of a base suite file, relative to this file" }]);
  const base = resolve(dirname(layer.file), ext);
  if (chain.includes(base)) throw new SuiteError(layer.file, [{ path: "$.extends", message: `extends cycle: ${[...chain, base].join(" -> ")}` }]);
  if (!existsSync(base)) throw new SuiteError(layer.file, [{ path: "$.extends", message: `base file ${base} does not exist` }]);
  return base;
}

/** Reads the chain of files from the suite's own to its last base. */
function readLayers(file: string, text: string): Layer[] {
  const layers: Layer[] = [];
  let next: { file: string; text: string } | undefined = { file, text };
  while (next) {
    const raw = parseJson(next.file, next.text);
    if (!isPlainObject(raw)) {
      if (layers.length === 0) return [{ file, raw: raw as Record<string, unknown> }]; // the schema says what is wrong
      throw new SuiteError(next.file, [{ path: "$", message: "a base suite file must hold a JSON object" }]);
    }
    const layer = { file: next.file, raw };
    layers.push(layer);
    const base = baseOf(layer, layers.map((l) => l.file));
    next = base === undefined ? undefined : { file: base, text: readFileSync(base, "utf8") };
  }
  return layers;
}

/**
 * The layer that gives the value at `path`: the most derived one holding the whole path, or
 * holding an array or scalar on the way (which replaced everything under it).
 */
function ownerOf(layers: readonly Layer[], path: readonly PropertyKey[]): string {
  for (const layer of layers) {
    let v: unknown = layer.raw;
    let owns = true;
    for (const key of path) {
      if (!isPlainObject(v)) break;
      if (!Object.hasOwn(v, String(key))) {
        owns = false;
        break;
      }
      v = v[String(key)];
    }
    if (owns) return layer.file;
  }
  return layers[0]!.file;
}

/** Resolves the `extends` chain of suite text read from `file`. */
export function resolveExtends(file: string, text: string): { raw: unknown; sources: SuiteSources } {
  const layers = readLayers(file, text);
  let raw: unknown = layers[layers.length - 1]!.raw;
  if (layers.length > 1) {
    const { extends: _base, ...last } = layers[layers.length - 1]!.raw;
    raw = layers.slice(0, -1).reduceRight<Record<string, unknown>>((merged, layer) => {
      const { extends: _ext, ...own } = layer.raw;
      return deepMerge(merged, own);
    }, last);
  }
  return { raw, sources: { files: layers.map((l) => l.file), fileOf: (path) => ownerOf(layers, path) } };
}
