import { ProtocolError, ValidationError } from "../errors.ts";
import { DTYPES, Tensor, isDType, itemsize, shapeSize, type DType } from "../tensor.ts";

/** Descriptor of one buffer frame (`header.buffers[i]`). */
export interface BufferDescriptor {
  dtype: DType;
  shape: number[];
  nbytes: number;
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
 * (views, no copy). Rejects values JSON cannot carry, naming the path.
 */
export function encodeTensors(value: unknown, path = "params"): EncodedTensors {
  const descriptors: BufferDescriptor[] = [];
  const frames: Uint8Array[] = [];
  const walk = (v: unknown, p: string): JsonValue => {
    if (v instanceof Tensor) {
      descriptors.push({ dtype: v.dtype, shape: [...v.shape], nbytes: v.nbytes });
      frames.push(v.bytes());
      return { $tensor: descriptors.length - 1 };
    }
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new ValidationError(p, `${v} cannot travel as JSON`);
      return v;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${p}[${i}]`));
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
        out[k] = walk(x, `${p}.${k}`);
      }
      return out;
    }
    if (v === undefined) return null;
    throw new ValidationError(p, `a ${typeof v === "object" ? (v as object).constructor?.name : typeof v} cannot travel to the runtime`);
  };
  const json = walk(value, path);
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
    if (!Array.isArray(shape) || !shape.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) {
      return bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const want = shapeSize(shape as number[]) * itemsize(dtype);
    if (nbytes !== want) return bad(`nbytes ${String(nbytes)} does not match ${dtype}[${(shape as number[]).join(", ")}] (${want})`);
    const frame = frames[i] as Uint8Array;
    if (frame.byteLength !== want) return bad(`frame has ${frame.byteLength} bytes, descriptor says ${want}`);
    return { dtype, shape: shape as number[], nbytes: want };
  });
}

/**
 * Replaces every `{"$tensor": i}` inside `json` by a {@link Tensor} over frame `i`
 * (a view where alignment allows).
 */
export function decodeTensors(json: unknown, descriptors: readonly BufferDescriptor[], frames: readonly Uint8Array[]): unknown {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
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
      for (const k of keys) out[k] = walk(v[k]);
      return out;
    }
    return v;
  };
  return walk(json);
}
