import { ProtocolError, ValidationError } from "../errors.ts";
import { DTYPES, Tensor, isDType, itemsize, shapeSize, type DType } from "../tensor.ts";
import type { WireMessage } from "./wire.ts";

/** Descriptor of one buffer frame (`header.buffers[i]`). */
export interface BufferDescriptor {
  dtype: DType;
  shape: number[];
  nbytes: number;
}

/**
 * Limits of docs/protocol.md (Envelope): JSON nests at most {@link MAX_DEPTH} levels (the
 * content object is level 1); a shape has at most {@link MAX_NDIM} dimensions whose
 * product, counting a zero as one, is at most {@link MAX_ELEMENTS}.
 */
export const MAX_DEPTH = 64;
/** Most dimensions a tensor may have on the wire. */
export const MAX_NDIM = 32;
/** Largest product of a shape's dimensions (zeros counted as 1): exact in both languages. */
export const MAX_ELEMENTS = Number.MAX_SAFE_INTEGER;

/** What makes `shape` unusable on the wire, or undefined when it is fine. */
export function shapeProblem(shape: unknown): string | undefined {
  if (!Array.isArray(shape)) return "must be a list of non-negative integers";
  if (shape.length > MAX_NDIM) return `has ${shape.length} dimensions, more than ${MAX_NDIM}`;
  let product = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || (d as number) < 0) return "must be a list of non-negative integers";
    product *= Math.max(d as number, 1);
    if (product > MAX_ELEMENTS) return "is too large: the product of its dimensions (zeros counted as 1) exceeds 2**53 - 1";
  }
  return undefined;
}

/** A JSON value (after tensors were replaced by placeholders). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Result of {@link encodeTensors}. */
export interface EncodedTensors<T = JsonValue> {
  json: T;
  descriptors: BufferDescriptor[];
  frames: Uint8Array[];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// A placeholder is an object whose only key is "$tensor", with an integer value (a JSON
// Schema describing placeholders, {"$tensor": {"type": "integer"}}, is not one).
function isPlaceholder(v: Record<string, unknown>, keys: string[]): boolean {
  return keys.length === 1 && keys[0] === "$tensor" && Number.isInteger(v.$tensor);
}

/**
 * Replaces every {@link Tensor} inside `value` by `{"$tensor": i}` and collects its bytes
 * (views, no copy). Rejects values JSON cannot carry, naming the path: non-finite numbers,
 * nesting deeper than {@link MAX_DEPTH}, shapes {@link shapeProblem} refuses.
 * @param depth - the level of `value` in the message content (a call's params are at 2)
 */
export function encodeTensors(value: unknown, path = "params", depth = 2): EncodedTensors {
  const descriptors: BufferDescriptor[] = [];
  const frames: Uint8Array[] = [];
  const walk = (v: unknown, p: string, level: number): JsonValue => {
    // A tensor becomes a placeholder object: a level too.
    if ((v instanceof Tensor || Array.isArray(v) || isPlainObject(v)) && level > MAX_DEPTH) {
      throw new ValidationError(p, `nests deeper than ${MAX_DEPTH} levels (the limit of the protocol)`);
    }
    if (v instanceof Tensor) {
      const problem = shapeProblem(v.shape);
      if (problem) throw new ValidationError(p, `a tensor's shape [${v.shape.join(", ")}] ${problem}`);
      descriptors.push({ dtype: v.dtype, shape: [...v.shape], nbytes: v.nbytes });
      frames.push(v.bytes());
      return { $tensor: descriptors.length - 1 };
    }
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new ValidationError(p, `${v} cannot travel as JSON`);
      return v;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${p}[${i}]`, level + 1));
    if (ArrayBuffer.isView(v)) {
      throw new ValidationError(p, "typed arrays travel as tensors: wrap it with Tensor.from(array, shape)");
    }
    if (isPlainObject(v)) {
      const keys = Object.keys(v);
      if (isPlaceholder(v, keys)) {
        throw new ValidationError(p, 'an object whose only key is "$tensor" with an integer value is reserved for tensor placeholders');
      }
      const out: { [key: string]: JsonValue } = {};
      for (const k of keys) {
        const x = v[k];
        if (x === undefined) continue; // as JSON.stringify does
        out[k] = walk(x, `${p}.${k}`, level + 1);
      }
      return out;
    }
    if (v === undefined) return null;
    throw new ValidationError(p, `a ${typeof v === "object" ? (v as object).constructor?.name : typeof v} cannot travel to the runtime`);
  };
  const json = walk(value, path, depth);
  return { json, descriptors, frames };
}

/** Checks header.buffers against the frames; throws ProtocolError (code bad_tensor) when they disagree. */
export function checkDescriptors(raw: unknown, frames: readonly Uint8Array[]): BufferDescriptor[] {
  if (!Array.isArray(raw)) throw new ProtocolError("header.buffers is not an array", { context: { remoteCode: "bad_tensor" } });
  if (raw.length !== frames.length) {
    throw new ProtocolError(`header lists ${raw.length} buffers but ${frames.length} buffer frames arrived`, {
      context: { remoteCode: "bad_tensor" },
    });
  }
  return raw.map((d: unknown, i) => {
    const bad = (why: string): never => {
      throw new ProtocolError(`buffer ${i}: ${why}`, { context: { remoteCode: "bad_tensor", index: i } });
    };
    if (!isPlainObject(d)) return bad("descriptor is not an object");
    const { dtype, shape, nbytes } = d;
    if (!isDType(dtype)) return bad(`unknown dtype ${JSON.stringify(dtype)} (allowed: ${DTYPES.join(", ")})`);
    const problem = shapeProblem(shape);
    if (problem) return bad(`shape ${JSON.stringify(shape).slice(0, 200)} ${problem}`);
    const want = shapeSize(shape as number[]) * itemsize(dtype);
    if (nbytes !== want) return bad(`nbytes ${String(nbytes)} does not match ${dtype}[${(shape as number[]).join(", ")}] (${want})`);
    const frame = frames[i] as Uint8Array;
    if (frame.byteLength !== want) return bad(`frame has ${frame.byteLength} bytes, descriptor says ${want}`);
    return { dtype, shape: shape as number[], nbytes: want };
  });
}

/**
 * Replaces every `{"$tensor": i}` inside `json` (a message's content, level 1) by a
 * {@link Tensor} over frame `i` (a view where alignment allows).
 * @throws ProtocolError (remote code `malformed`) when `json` nests deeper than {@link MAX_DEPTH}
 */
export function decodeTensors(json: unknown, descriptors: readonly BufferDescriptor[], frames: readonly Uint8Array[]): unknown {
  const walk = (v: unknown, level: number): unknown => {
    if ((Array.isArray(v) || isPlainObject(v)) && level > MAX_DEPTH) {
      throw new ProtocolError(`the message nests deeper than ${MAX_DEPTH} levels`, { context: { remoteCode: "malformed" } });
    }
    if (Array.isArray(v)) return v.map((x) => walk(x, level + 1));
    if (isPlainObject(v)) {
      const keys = Object.keys(v);
      if (isPlaceholder(v, keys)) {
        const i = v.$tensor;
        if ((i as number) < 0 || (i as number) >= descriptors.length) {
          throw new ProtocolError(`$tensor index ${JSON.stringify(i)} out of range (${descriptors.length} buffers)`, {
            context: { remoteCode: "bad_tensor" },
          });
        }
        const d = descriptors[i as number] as BufferDescriptor;
        return Tensor.fromBytes(d.dtype, d.shape, frames[i as number] as Uint8Array);
      }
      const out: Record<string, unknown> = {};
      for (const k of keys) out[k] = walk(v[k], level + 1);
      return out;
    }
    return v;
  };
  return walk(json, 1);
}

/**
 * True when {@link decodeTensors} would return `msg`'s content unchanged (as an equal copy):
 * no buffers, and content text that holds no `$tensor` key and nests at most
 * {@link MAX_DEPTH} levels ({@link WireMessage.plainDepth}, set by `decodeMessage`).
 */
export function isPlain(msg: WireMessage): boolean {
  return msg.plainDepth !== undefined && msg.plainDepth <= MAX_DEPTH && msg.buffers.length === 0 && msg.header.buffers.length === 0;
}
