import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../runtime/process.ts";
import { Tensor } from "../tensor.ts";
import { ReplayGuard } from "./replay.ts";
import { checkDescriptors, decodeTensors, encodeTensors } from "./tensors.ts";
import { decodeMessage, encodeMessage, makeHeader, sign, type WireMessage } from "./wire.ts";

const key = randomBytes(32);
const opts = (extra: Partial<Parameters<typeof decodeMessage>[1]> = {}) => ({ key, signedBuffers: false, maxMessageBytes: 1 << 20, ...extra });

function message(signedBuffers = false): WireMessage {
  const enc = encodeTensors({ x: Tensor.from([1, 2, 3]), nested: [{ y: Tensor.zeros([2], "int64") }], s: "hi" });
  return {
    header: makeHeader({ msgType: "call_request", session: "s", buffers: enc.descriptors, signedBuffers }),
    content: { method: "echo", params: enc.json },
    buffers: enc.frames,
  };
}

describe("sign", () => {
  it("length-prefixes frames so the split is signed", () => {
    const a = sign(key, [Buffer.from("ab"), Buffer.from("c")]);
    const b = sign(key, [Buffer.from("a"), Buffer.from("bc")]);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
  });
});

describe("encode/decode", () => {
  it("round trips a message with tensors", () => {
    const frames = encodeMessage(message(), key);
    const r = decodeMessage(frames, opts());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const decoded = decodeTensors(r.message.content, checkDescriptors(r.message.header.buffers, r.message.buffers), r.message.buffers) as {
      params: { x: Tensor; nested: { y: Tensor }[] };
    };
    expect(decoded.params.x.toArray()).toEqual([1, 2, 3]);
    expect(decoded.params.nested[0]?.y.dtype).toBe("int64");
  });

  it("drops, by reason: malformed, oversized, bad signature, replayed", () => {
    const frames = encodeMessage(message(), key);
    expect(decodeMessage(frames.slice(0, 3), opts())).toEqual({ ok: false, reason: "malformed" });
    expect(decodeMessage([Buffer.from("nearpos/2"), ...frames.slice(1)], opts())).toEqual({ ok: false, reason: "malformed" });
    expect(decodeMessage(frames, opts({ maxMessageBytes: 10 }))).toEqual({ ok: false, reason: "oversized" });
    expect(decodeMessage(frames, opts({ key: randomBytes(32) }))).toEqual({ ok: false, reason: "bad_signature" });
    const forged = [...frames];
    forged[3] = Buffer.from(JSON.stringify({ method: "sleep", params: {} }));
    expect(decodeMessage(forged, opts())).toEqual({ ok: false, reason: "bad_signature" });
    const replay = new ReplayGuard();
    expect(decodeMessage(frames, opts({ replay })).ok).toBe(true);
    expect(decodeMessage(frames, opts({ replay }))).toEqual({ ok: false, reason: "replayed" });
  });

  it("drops a signed message whose header is not valid", () => {
    const tag = Buffer.from("nearpos/1");
    const header = Buffer.from(JSON.stringify({ msg_id: "x" }));
    const content = Buffer.from("{}");
    const frames = [tag, Buffer.from(sign(key, [tag, header, content])), header, content];
    expect(decodeMessage(frames, opts())).toEqual({ ok: false, reason: "malformed" });
  });

  it("covers buffers only when signed_buffers is set", () => {
    const unsigned = encodeMessage(message(false), key);
    (unsigned[4] as Uint8Array)[0]! ^= 1;
    expect(decodeMessage(unsigned, opts()).ok).toBe(true);
    const signed = encodeMessage(message(true), key);
    (signed[4] as Uint8Array)[0]! ^= 1;
    expect(decodeMessage(signed, opts({ signedBuffers: true }))).toEqual({ ok: false, reason: "bad_signature" });
    // A connection that requires signed buffers refuses unsigned ones.
    expect(decodeMessage(encodeMessage(message(false), key), opts({ signedBuffers: true }))).toEqual({ ok: false, reason: "malformed" });
  });

  it("rejects buffer descriptors that disagree with the frames", () => {
    const frame = new Uint8Array(8);
    expect(() => checkDescriptors([{ dtype: "float32", shape: [3], nbytes: 12 }], [frame])).toThrow(/nbytes|frame/);
    expect(() => checkDescriptors([{ dtype: "complex", shape: [2], nbytes: 8 }], [frame])).toThrow(/dtype/);
    expect(() => checkDescriptors([], [frame])).toThrow(/buffer/);
    expect(() => decodeTensors({ $tensor: 1 }, [], [])).toThrow(/out of range/);
  });

  it("refuses the reserved $tensor key and values JSON cannot carry", () => {
    expect(() => encodeTensors({ a: { $tensor: 0 } })).toThrow(/reserved/);
    expect(() => encodeTensors({ a: Number.NaN })).toThrow(/params\.a/);
    expect(() => encodeTensors({ a: new Float32Array(2) })).toThrow(/Tensor\.from/);
  });
});

// docs/protocol-vectors.json: a fixed key, messages and their exact frames.
const vectorsPath = join(REPO_ROOT, "docs", "protocol-vectors.json");
describe.runIf(existsSync(vectorsPath))("docs/protocol-vectors.json", () => {
  const doc = existsSync(vectorsPath) ? (JSON.parse(readFileSync(vectorsPath, "utf8")) as VectorsDoc) : ({ key: "", vectors: [] } as VectorsDoc);
  interface Vector {
    name: string;
    header: Record<string, unknown>;
    content: Record<string, unknown>;
    buffers_hex?: string[];
    frames_hex: string[];
    [k: string]: unknown;
  }
  interface VectorsDoc {
    key: string;
    vectors: Vector[];
    [k: string]: unknown;
  }
  const vkey = Buffer.from(doc.key, "hex");
  it.each(doc.vectors.map((v) => [v.name, v] as const))("%s: verifies and re-encodes byte for byte", (_name, v) => {
    const frames = v.frames_hex.map((h) => Buffer.from(h, "hex"));
    const r = decodeMessage(frames, { key: vkey, signedBuffers: v.header.signed_buffers === true, maxMessageBytes: 1 << 30 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.message.header).toEqual(v.header);
    expect(r.message.content).toEqual(v.content);
    // Signature over the exact received frames must be what the vector holds.
    const covered = [frames[0], frames[2], frames[3], ...(v.header.signed_buffers ? frames.slice(4) : [])] as Buffer[];
    expect(sign(vkey, covered)).toBe(Buffer.from(frames[1] as Buffer).toString("ascii"));
    // Tensors decode against their descriptors.
    const bufs = frames.slice(4);
    expect(() => decodeTensors(r.message.content, checkDescriptors(r.message.header.buffers, bufs), bufs)).not.toThrow();
  });
});
