import { ValidationError } from "./errors.ts";

/** Element types a {@link Tensor} can hold (the protocol's dtypes). */
export const DTYPES = [
  "float32",
  "float64",
  "float16",
  "bfloat16",
  "int8",
  "int16",
  "int32",
  "int64",
  "uint8",
  "bool",
] as const;

/** One of {@link DTYPES}. */
export type DType = (typeof DTYPES)[number];

/** The typed array that holds each dtype's elements. float16/bfloat16 hold raw 16-bit patterns. */
export interface TypedArrayFor {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

/** Any typed array a tensor may hold. */
export type TensorData = TypedArrayFor[DType];

type Ctor<A> = { new (length: number): A; new (buffer: ArrayBufferLike, byteOffset: number, length: number): A; BYTES_PER_ELEMENT: number };

const CTORS: { [D in DType]: Ctor<TypedArrayFor[D]> } = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  bool: Uint8Array,
} as const;

/** Bytes per element of a dtype. */
export function itemsize(dtype: DType): number {
  return CTORS[dtype].BYTES_PER_ELEMENT;
}

/** True when `value` names a dtype of {@link DTYPES}. */
export function isDType(value: unknown): value is DType {
  return typeof value === "string" && (DTYPES as readonly string[]).includes(value);
}

function checkShape(shape: readonly number[], field = "shape"): void {
  if (!Array.isArray(shape)) throw new ValidationError(field, `must be an array of non-negative integers, got ${typeof shape}`);
  shape.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) throw new ValidationError(`${field}[${i}]`, `must be a non-negative integer, got ${String(d)}`);
  });
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function defaultDType(data: TensorData): DType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof BigInt64Array) return "int64";
  if (data instanceof Uint8Array) return "uint8";
  if (data instanceof Uint16Array) {
    throw new ValidationError("dtype", "a Uint16Array holds raw float16 or bfloat16 bits: pass the dtype", { allowed: ["float16", "bfloat16"] });
  }
  throw new ValidationError("data", `unsupported array type ${(data as object).constructor?.name}`);
}

/**
 * An n-dimensional array: dtype, shape and a typed array of its elements in row-major order.
 *
 * Tensors travel to and from the runtime as raw little-endian bytes beside the JSON.
 * A tensor received from the runtime is a view over the received frame when the frame's
 * alignment allows (no copy), otherwise a copy. Do not modify a tensor's data while a
 * call that sends it is in flight.
 */
export class Tensor<D extends DType = DType> {
  /** Element type. */
  readonly dtype: D;
  /** Dimensions, outermost first; `[]` for a scalar. */
  readonly shape: number[];
  /** Elements in row-major order. */
  readonly data: TypedArrayFor[D];

  /**
   * @param dtype - element type
   * @param shape - dimensions; their product must equal `data.length`
   * @param data - elements, of the typed array that matches `dtype`
   * @throws ValidationError when the array type or length does not match
   */
  constructor(dtype: D, shape: readonly number[], data: TypedArrayFor[D]) {
    if (!isDType(dtype)) throw new ValidationError("dtype", `unknown dtype ${JSON.stringify(dtype)}`, { allowed: DTYPES });
    checkShape(shape);
    const ctor = CTORS[dtype];
    if (!(data instanceof (ctor as unknown as new () => object))) {
      throw new ValidationError("data", `dtype ${dtype} needs a ${ctor.name}, got ${(data as object)?.constructor?.name ?? typeof data}`);
    }
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new ValidationError("shape", `shape [${shape.join(", ")}] holds ${n} elements but data has ${data.length}`);
    }
    this.dtype = dtype;
    this.shape = [...shape];
    this.data = data;
  }

  /**
   * Builds a tensor from a typed array or a flat JS array.
   *
   * @param data - a typed array (its type gives the dtype unless `dtype` is given), or a flat
   *   array of numbers, bigints or booleans (copied into a new typed array)
   * @param shape - dimensions; default `[data.length]`
   * @param dtype - element type; default from the typed array, `float32` for numbers,
   *   `int64` for bigints, `bool` for booleans
   * @example `Tensor.from([1, 2, 3, 4], [2, 2])`
   */
  static from<D extends DType = DType>(
    data: TensorData | readonly number[] | readonly bigint[] | readonly boolean[],
    shape?: readonly number[],
    dtype?: D,
  ): Tensor<D> {
    if (ArrayBuffer.isView(data)) {
      const dt = (dtype ?? defaultDType(data as TensorData)) as D;
      return new Tensor(dt, shape ?? [data.length], data as TypedArrayFor[D]);
    }
    if (!Array.isArray(data)) throw new ValidationError("data", "must be a typed array or an array");
    const first = data[0];
    const dt = (dtype ?? (typeof first === "bigint" ? "int64" : typeof first === "boolean" ? "bool" : "float32")) as D;
    if (!isDType(dt)) throw new ValidationError("dtype", `unknown dtype ${JSON.stringify(dt)}`, { allowed: DTYPES });
    const out = new CTORS[dt](data.length) as TypedArrayFor[D];
    for (let i = 0; i < data.length; i++) {
      const v = data[i] as number | bigint | boolean;
      if (dt === "int64") (out as BigInt64Array)[i] = BigInt(v as number);
      else if (typeof v === "bigint") (out as Float32Array)[i] = Number(v);
      else (out as Float32Array)[i] = Number(v);
    }
    return new Tensor(dt, shape ?? [data.length], out);
  }

  /** A tensor of zeros. `dtype` defaults to `float32`. */
  static zeros<D extends DType = "float32">(shape: readonly number[], dtype?: D): Tensor<D> {
    const dt = (dtype ?? "float32") as D;
    if (!isDType(dt)) throw new ValidationError("dtype", `unknown dtype ${JSON.stringify(dt)}`, { allowed: DTYPES });
    checkShape(shape);
    return new Tensor(dt, shape, new CTORS[dt](shapeSize(shape)) as TypedArrayFor[D]);
  }

  /**
   * Wraps raw little-endian bytes: a view when `bytes.byteOffset` is a multiple of the
   * itemsize, a copy otherwise.
   * @throws ValidationError when the byte length does not match shape and dtype
   */
  static fromBytes<D extends DType>(dtype: D, shape: readonly number[], bytes: Uint8Array): Tensor<D> {
    if (!isDType(dtype)) throw new ValidationError("dtype", `unknown dtype ${JSON.stringify(dtype)}`, { allowed: DTYPES });
    checkShape(shape);
    const size = itemsize(dtype);
    const n = shapeSize(shape);
    if (bytes.byteLength !== n * size) {
      throw new ValidationError("bytes", `shape [${shape.join(", ")}] of ${dtype} needs ${n * size} bytes, got ${bytes.byteLength}`);
    }
    const ctor = CTORS[dtype];
    let data: TypedArrayFor[D];
    if (bytes.byteOffset % size === 0) {
      data = new ctor(bytes.buffer, bytes.byteOffset, n) as TypedArrayFor[D];
    } else {
      const copy = new Uint8Array(bytes.byteLength);
      copy.set(bytes);
      data = new ctor(copy.buffer, 0, n) as TypedArrayFor[D];
    }
    return new Tensor(dtype, shape, data);
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Size of the data in bytes. */
  get nbytes(): number {
    return this.data.byteLength;
  }

  /** The raw bytes, as a view (no copy). */
  bytes(): Uint8Array {
    return new Uint8Array(this.data.buffer, this.data.byteOffset, this.data.byteLength);
  }

  /** The elements as a flat JS array (numbers; bigints for int64; booleans for bool). */
  toArray(): number[] | bigint[] | boolean[] {
    if (this.dtype === "bool") return Array.from(this.data as Uint8Array, (v) => v !== 0);
    if (this.dtype === "int64") return Array.from(this.data as BigInt64Array);
    return Array.from(this.data as Float32Array);
  }

  /** A short description, e.g. `Tensor(float32, [2, 3])`. */
  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}])`;
  }

  /** JSON form for logs; tensors travel as buffers, never through this. */
  toJSON(): { dtype: D; shape: number[] } {
    return { dtype: this.dtype, shape: this.shape };
  }
}
