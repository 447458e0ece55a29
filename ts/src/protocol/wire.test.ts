import { createHmac, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { REPO_ROOT } from "../runtime/process.ts";
import { Tensor, type DType } from "../tensor.ts";
import { ReplayGuard } from "./replay.ts";
import { checkDescriptors, decodeTensors, encodeTensors } from "./tensors.ts";
import { decodeMessage, encodeMessage, makeHeader, sign, type Header, type WireMessage } from "./wire.ts";

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

  it("equals a per-frame HMAC whatever the mix of short and long frames", () => {
    const reference = (frames: Uint8Array[]): string => {
      const h = createHmac("sha256", key);
      for (const f of frames) {
        const len = Buffer.alloc(8);
        len.writeBigUInt64BE(BigInt(f.byteLength));
        h.update(len).update(f);
      }
      return h.digest("hex");
    };
    const sizes = [[], [0], [3, 0, 7], [65536, 65537], [5, 200_000, 9, 300_000, 1], [1 << 20]];
    for (const s of sizes) {
      const frames = s.map((n) => randomBytes(n));
      expect(sign(key, frames)).toBe(reference(frames));
      // views into a larger buffer (as received frames are) sign only their own bytes
      const views = frames.map((f) => Buffer.concat([Buffer.from("xx"), f, Buffer.from("y")]).subarray(2, 2 + f.byteLength));
      expect(sign(key, views)).toBe(reference(frames));
    }
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

  it("covers buffers only when the connection signs them", () => {
    const unsigned = encodeMessage(message(false), key);
    (unsigned[4] as Uint8Array)[0]! ^= 1;
    expect(decodeMessage(unsigned, opts()).ok).toBe(true);
    const signed = encodeMessage(message(true), key);
    (signed[4] as Uint8Array)[0]! ^= 1;
    expect(decodeMessage(signed, opts({ signedBuffers: true }))).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("follows the connection's signed_buffers, never the header's", () => {
    // Signed the other way: the signature does not match, whatever the header claims.
    expect(decodeMessage(encodeMessage(message(false), key), opts({ signedBuffers: true }))).toEqual({ ok: false, reason: "bad_signature" });
    expect(decodeMessage(encodeMessage(message(true), key), opts({ signedBuffers: false }))).toEqual({ ok: false, reason: "bad_signature" });
  });

  it("parses nothing before the signature matched", () => {
    const frames = encodeMessage(message(), key);
    const hugeHeader = Buffer.from(`{"signed_buffers":true,"x":"${"a".repeat(4 << 20)}"}`);
    const parse = vi.spyOn(JSON, "parse");
    try {
      expect(decodeMessage([frames[0]!, Buffer.from("0".repeat(64)), hugeHeader, frames[3]!], opts({ maxMessageBytes: 8 << 20 }))).toEqual({ ok: false, reason: "bad_signature" });
      expect(decodeMessage(frames, opts({ key: randomBytes(32) }))).toEqual({ ok: false, reason: "bad_signature" });
      expect(parse).not.toHaveBeenCalled();
      expect(decodeMessage(frames, opts()).ok).toBe(true);
      expect(parse).toHaveBeenCalledTimes(2); // header and content, once authenticated
    } finally {
      parse.mockRestore();
    }
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

// docs/protocol-vectors.json: a fixed key, messages and their exact frames, written by the
// Python side. Both codecs must produce and accept exactly these bytes.
interface VectorTensor {
  dtype: DType;
  shape: number[];
  values: unknown;
}
interface Vector {
  name: string;
  connection_signed_buffers: boolean;
  header: Header;
  content: Record<string, unknown>;
  tensors: VectorTensor[];
  signature: string;
  frames_hex: string[];
}
interface VectorsDoc {
  key_hex: string;
  messages: Vector[];
  signature_checks: { name: string; frames_hex?: string[]; signature: string; split_frames_hex?: string[]; split_signature?: string; message?: number }[];
}

function f16Bits(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}
function f16Value(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16Bits(v: number): number {
  f32[0] = v;
  return (u32[0] as number) >>> 16;
}

function tensorFromVector(v: VectorTensor): Tensor {
  const flat = [v.values].flat(Infinity as 1) as unknown[];
  const t = Tensor.zeros(v.shape, v.dtype);
  flat.forEach((x, i) => {
    const d = t.data;
    if (d instanceof BigInt64Array) d[i] = BigInt(x as string);
    else if (v.dtype === "float16") d[i] = f16Bits(x as number);
    else if (v.dtype === "bfloat16") d[i] = bf16Bits(x as number);
    else (d as Float64Array)[i] = Number(x);
  });
  return t;
}

function tensorValues(t: Tensor): unknown[] {
  if (t.dtype === "float16") return Array.from(t.data as Uint16Array, f16Value);
  if (t.dtype === "bfloat16") return Array.from(t.data as Uint16Array, (b) => ((u32[0] = b << 16), f32[0]));
  if (t.dtype === "int64") return Array.from(t.data as BigInt64Array, String);
  return t.toArray();
}

const vectorsPath = join(REPO_ROOT, "docs", "protocol-vectors.json");
describe.runIf(existsSync(vectorsPath))("docs/protocol-vectors.json", () => {
  const doc = (existsSync(vectorsPath) ? JSON.parse(readFileSync(vectorsPath, "utf8")) : { key_hex: "", messages: [], signature_checks: [] }) as VectorsDoc;
  const vkey = Buffer.from(doc.key_hex, "hex");
  const hex = (frames: readonly Uint8Array[]) => frames.map((f) => Buffer.from(f).toString("hex"));

  it("holds messages and signature checks", () => {
    expect(doc.messages.length).toBeGreaterThan(0);
    expect(vkey.byteLength).toBe(32);
  });

  it.each(doc.messages.map((v) => [v.name, v] as const))("%s: encodes byte for byte", (_name, v) => {
    // Rebuild the content with real Tensors in place of the placeholders, in index order.
    const tensors = v.tensors.map(tensorFromVector);
    const withTensors = JSON.parse(JSON.stringify(v.content), (_k, x: unknown) =>
      x && typeof x === "object" && Object.keys(x).length === 1 && "$tensor" in x ? tensors[(x as { $tensor: number }).$tensor] : x,
    ) as Record<string, unknown>;
    const enc = encodeTensors(withTensors);
    expect(enc.json).toEqual(v.content);
    expect(enc.descriptors).toEqual(v.header.buffers);
    const frames = encodeMessage({ header: v.header, content: enc.json as Record<string, unknown>, buffers: enc.frames }, vkey);
    expect(hex(frames)).toEqual(v.frames_hex);
    expect(Buffer.from(frames[1] as Uint8Array).toString("ascii")).toBe(v.signature);
  });

  it.each(doc.messages.map((v) => [v.name, v] as const))("%s: verifies and decodes", (_name, v) => {
    const frames = v.frames_hex.map((h) => Buffer.from(h, "hex"));
    const r = decodeMessage(frames, { key: vkey, signedBuffers: v.connection_signed_buffers, maxMessageBytes: 1 << 20 });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.message.header).toEqual(v.header);
    const bufs = r.message.buffers;
    const decoded = decodeTensors(r.message.content, checkDescriptors(r.message.header.buffers, bufs), bufs);
    const found: Tensor[] = [];
    const walk = (x: unknown): void => {
      if (x instanceof Tensor) found.push(x);
      else if (x && typeof x === "object") Object.values(x).forEach(walk);
    };
    walk(decoded);
    expect(found.map((t) => [t.dtype, t.shape, tensorValues(t)])).toEqual(
      v.tensors.map((t) => [t.dtype, t.shape, [t.values].flat(Infinity as 1)]),
    );
    // A flipped bit anywhere signed is refused.
    const bad = frames.map((f) => Buffer.from(f));
    (bad[3] as Buffer)[0]! ^= 1;
    expect(decodeMessage(bad, { key: vkey, signedBuffers: v.connection_signed_buffers, maxMessageBytes: 1 << 20 }).ok).toBe(false);
    // Checked by a connection with the other setting, the same frames fail when they hold buffers.
    if (v.header.buffers.length > 0) {
      expect(decodeMessage(frames, { key: vkey, signedBuffers: !v.connection_signed_buffers, maxMessageBytes: 1 << 20 })).toEqual({ ok: false, reason: "bad_signature" });
    }
  });

  it.each(doc.signature_checks.map((c) => [c.name, c] as const))("signature check: %s", (_name, c) => {
    if (c.frames_hex) {
      expect(sign(vkey, c.frames_hex.map((h) => Buffer.from(h, "hex")))).toBe(c.signature);
      if (c.split_frames_hex) expect(sign(vkey, c.split_frames_hex.map((h) => Buffer.from(h, "hex")))).toBe(c.split_signature);
    } else {
      const m = doc.messages[c.message ?? -1] as Vector;
      const f = m.frames_hex.map((h) => Buffer.from(h, "hex"));
      expect(sign(vkey, [f[0], f[2], f[3]] as Buffer[])).toBe(c.signature);
      if (m.connection_signed_buffers) expect(c.signature).not.toBe(m.signature);
    }
  });
});
