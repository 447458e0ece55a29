import { describe, expect, it } from "vitest";
import { DTYPES, Tensor, itemsize } from "./tensor.ts";
import { ValidationError } from "./errors.ts";

describe("Tensor", () => {
  it("builds from numbers with a shape", () => {
    const t = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(t.dtype).toBe("float32");
    expect(t.shape).toEqual([2, 3]);
    expect(t.data).toBeInstanceOf(Float32Array);
    expect(t.nbytes).toBe(24);
  });

  it("refuses a shape that does not match the data, naming both", () => {
    const err = (() => {
      try {
        Tensor.from([1, 2, 3], [2, 2]);
      } catch (e) {
        return e;
      }
    })() as ValidationError;
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.code).toBe("invalid_config");
    expect(err.field).toBe("shape");
    expect(err.message).toContain("4 elements");
  });

  it("refuses negative and fractional dims and unknown dtypes", () => {
    expect(() => Tensor.zeros([-1])).toThrow(ValidationError);
    expect(() => Tensor.zeros([1.5])).toThrow(ValidationError);
    expect(() => Tensor.zeros([1], "complex64" as "float32")).toThrow(/allowed/);
  });

  it("requires a dtype for a Uint16Array", () => {
    expect(() => Tensor.from(new Uint16Array(2))).toThrow(/float16/);
    expect(Tensor.from(new Uint16Array(2), [2], "bfloat16").dtype).toBe("bfloat16");
  });

  it("refuses a typed array of the wrong kind for the dtype", () => {
    expect(() => new Tensor("int32", [2], new Float32Array(2) as unknown as Int32Array)).toThrow(/Int32Array/);
  });

  it.each(DTYPES)("zeros and fromBytes round trip for %s", (dtype) => {
    const z = Tensor.zeros([2, 3], dtype);
    expect(z.nbytes).toBe(6 * itemsize(dtype));
    const back = Tensor.fromBytes(dtype, [2, 3], z.bytes());
    expect(back.data.constructor).toBe(z.data.constructor);
    expect(back.shape).toEqual([2, 3]);
  });

  it("is a view over aligned bytes and a copy over unaligned ones", () => {
    const buf = new Uint8Array(17);
    const aligned = Tensor.fromBytes("float32", [4], buf.subarray(0, 16));
    expect(aligned.data.buffer).toBe(buf.buffer);
    const unaligned = Tensor.fromBytes("float32", [4], buf.subarray(1, 17));
    expect(unaligned.data.buffer).not.toBe(buf.buffer);
    buf[1] = 0x3f; // unaligned copy must not see later writes
    expect(unaligned.data[0]).toBe(0);
  });

  it("handles scalars and empty tensors", () => {
    expect(Tensor.from([7], []).size).toBe(1);
    const e = Tensor.zeros([0, 5], "int64");
    expect(e.size).toBe(0);
    expect(e.nbytes).toBe(0);
  });

  it("converts bigints, booleans and back", () => {
    expect(Tensor.from([1n, -2n]).toArray()).toEqual([1n, -2n]);
    const b = Tensor.from([true, false, true]);
    expect(b.dtype).toBe("bool");
    expect(b.toArray()).toEqual([true, false, true]);
  });
});
