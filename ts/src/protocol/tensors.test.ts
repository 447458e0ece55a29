import { describe, expect, it } from "vitest";
import { ProtocolError, ValidationError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import { MAX_DEPTH, checkDescriptors, decodeTensors, encodeTensors, shapeProblem } from "./tensors.ts";

function nested(depth: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe("the protocol's limits on shapes and nesting (docs/protocol.md, Envelope)", () => {
  it("refuses shapes torch and JS cannot hold, on both sides", () => {
    const huge = Tensor.zeros([2 ** 53 - 1, 2 ** 53 - 1, 0]); // 0 elements: a valid Tensor here
    expect(() => encodeTensors({ x: huge })).toThrow(ValidationError);
    expect(() => encodeTensors({ x: huge })).toThrow(/params\.x: .*exceeds 2\*\*53 - 1/);
    expect(() => encodeTensors({ x: Tensor.zeros(new Array<number>(33).fill(1)) })).toThrow(/33 dimensions, more than 32/);
    const bad = (shape: unknown) => () => checkDescriptors([{ dtype: "float32", shape, nbytes: 0 }], [new Uint8Array(0)]);
    for (const shape of [[2 ** 53 - 1, 2 ** 53 - 1, 0], [2 ** 64, 0], new Array(33).fill(1), [-1], [true], [1.5], "4"]) {
      expect(bad(shape), JSON.stringify(shape)).toThrow(ProtocolError);
    }
    expect(() => bad([2 ** 53 - 1, 2, 0])()).toThrow(/bad|exceeds/);
    // the largest that are allowed
    for (const shape of [[2 ** 53 - 1, 0], [0, 2 ** 53 - 1], new Array<number>(32).fill(1)]) expect(shapeProblem(shape)).toBeUndefined();
    expect(checkDescriptors([{ dtype: "int64", shape: [2 ** 53 - 1, 0], nbytes: 0 }], [new Uint8Array(0)])[0]?.shape).toEqual([2 ** 53 - 1, 0]);
  });

  it(`bounds nesting at ${MAX_DEPTH} levels, the content object being level 1`, () => {
    // params sit at level 2: {"v": ...} at 2, its arrays from 3 to MAX_DEPTH
    expect(encodeTensors({ v: nested(MAX_DEPTH - 2) }).json).toEqual({ v: nested(MAX_DEPTH - 2) });
    expect(() => encodeTensors({ v: nested(MAX_DEPTH - 1) })).toThrow(/nests deeper than 64/);
    expect(() => encodeTensors({ v: nested(900) })).toThrow(ValidationError);
    const content = (d: number) => ({ method: "echo", params: { v: nested(d) } });
    expect(decodeTensors(content(MAX_DEPTH - 2), [], [])).toEqual(content(MAX_DEPTH - 2));
    const err = (() => {
      try {
        decodeTensors(content(MAX_DEPTH - 1), [], []);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).context.remoteCode).toBe("malformed");
  });
});
