// One hostile or oversized call must never end the runtime nor leave a call pending:
// through the public API on both transports, and as raw frames over ZeroMQ.
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { MessageTooLargeError, NearposError, ValidationError } from "../errors.ts";
import { DTYPES, Tensor, type DType } from "../tensor.ts";
import { encodeMessage, makeHeader, newId, sign } from "../protocol/wire.ts";
import { PROTOCOL_TAG } from "../protocol/version.ts";
import { Runtime } from "./runtime.ts";
import { processAlive, spawnManual, transports } from "./fixtures/helpers.ts";

const LIMIT = 1 << 20;
const SETTLE_MS = 10_000;

function nested(depth: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

// A small seeded generator: the same values on every run.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fuzzValue(rand: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const kind = Math.floor(rand() * (depth < 70 ? 8 : 4));
  if (kind === 0) return pick([0, -1, 2 ** 53, -0, 1e308, true, null, Number.NaN, Infinity, 2n ** 70n]);
  if (kind === 1) return pick(["", "é", "\u0000", "x".repeat(Math.floor(rand() * 100)), undefined]);
  if (kind === 2) return pick([{ $tensor: 0 }, { $tensor: "0" }, { $tensor: { type: "integer" } }, new Date(0), new Map(), () => 1, Symbol("s")]);
  if (kind === 3) {
    const dtype = pick(DTYPES) as DType;
    const shape = pick([[0], [2, 0, 3], [3], [2, 2], [], [2 ** 53 - 1, 0], [2 ** 53 - 1, 2 ** 53 - 1, 0], new Array<number>(33).fill(1), [0, 2 ** 40, 2 ** 40]]);
    return Tensor.zeros(shape, dtype);
  }
  if (kind <= 5) return Array.from({ length: 1 + Math.floor(rand() * 2) }, () => fuzzValue(rand, depth + 1));
  const out: Record<string, unknown> = {};
  for (let i = 0; i < 1 + Math.floor(rand() * 2); i++) out[String(Math.floor(rand() * 4))] = fuzzValue(rand, depth + 1);
  return out;
}

// Resolves with what the call ended with; fails the test if it is still pending after SETTLE_MS.
async function settle(p: Promise<unknown>, what: string): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${SETTLE_MS} ms: ${what}`)), SETTLE_MS);
  });
  try {
    return await Promise.race([p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error })), pending]);
  } finally {
    clearTimeout(timer);
  }
}

describe.each(transports)("a runtime over %s, given hostile and oversized calls", (transport) => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await Runtime.start({ transport, maxMessageBytes: LIMIT });
  });
  afterAll(async () => {
    await rt?.close();
  });

  async function stillServing(pid: number): Promise<void> {
    expect(await rt.call("echo", { still: "serving" })).toEqual({ still: "serving" });
    expect(rt.pid).toBe(pid);
    expect(processAlive(pid)).toBe(true);
    expect(rt.alive).toBe(true);
  }

  it("refuses a call over maxMessageBytes before sending it, naming the size and the limit", async () => {
    const r = await settle(rt.call("echo", { s: "x".repeat(2 << 20) }), "echo of 2 MiB of text");
    expect(r.ok).toBe(false);
    const err = (r as { error: unknown }).error as MessageTooLargeError;
    expect(err).toBeInstanceOf(MessageTooLargeError);
    expect(err).toMatchObject({ code: "message_too_large", direction: "request", limit: LIMIT });
    expect(err.bytes).toBeGreaterThan(2 << 20);
    expect(err.message).toContain(String(err.bytes));
    expect(err.message).toContain(String(LIMIT));
    // the tensors and the JSON together: each alone fits, the message does not
    const both = await settle(rt.call("echo", { t: Tensor.zeros([(LIMIT - 1000) / 4]), s: "y".repeat(2000) }), "tensor + text");
    expect((both as { error: unknown }).error).toBeInstanceOf(MessageTooLargeError);
    await stillServing(rt.pid);
  });

  it("rejects a call whose reply would be over the limit, naming the size and the limit", async () => {
    const r = await settle(rt.call("bytes_out", { nbytes: 8 << 20 }), "bytes_out of 8 MiB");
    expect(r.ok).toBe(false);
    const err = (r as { error: unknown }).error as MessageTooLargeError;
    expect(err).toBeInstanceOf(MessageTooLargeError);
    expect(err).toMatchObject({ code: "message_too_large", direction: "reply", limit: LIMIT });
    expect(err.bytes).toBeGreaterThan(8 << 20);
    expect(err.message).toMatch(/bytes_out/);
    // just under the limit still comes back
    const t = await rt.call<Tensor>("bytes_out", { nbytes: LIMIT - 4096 });
    expect(t.nbytes).toBe(LIMIT - 4096);
    await stillServing(rt.pid);
  });

  it("settles every fuzzed call with a typed error or a result, and keeps serving", async () => {
    const pid = rt.pid;
    const rand = prng(20261201);
    const fixed: [string, Record<string, unknown>][] = [
      ["huge empty shape", { x: Tensor.zeros([2 ** 53 - 1, 2 ** 53 - 1, 0]) }],
      ["33 dimensions", { x: Tensor.zeros(new Array<number>(33).fill(1)) }],
      ["largest empty shape allowed", { x: Tensor.zeros([2 ** 53 - 1, 0]) }],
      ["nesting 900", { v: nested(900) }],
      ["nesting at the limit", { v: nested(62) }],
      ["nesting one over", { v: nested(63) }],
      ["a cycle", ((): Record<string, unknown> => {
        const o: Record<string, unknown> = {};
        o.self = o;
        return o;
      })()],
    ];
    const cases: [string, Record<string, unknown>][] = [...fixed];
    for (let i = 0; i < 120; i++) cases.push([`fuzz ${i}`, { v: fuzzValue(rand, 3) }]);
    let resolved = 0;
    for (const [name, params] of cases) {
      const r = await settle(rt.call("echo", params), name);
      if (r.ok) resolved++;
      else expect(r.error, name).toBeInstanceOf(NearposError);
    }
    expect(resolved).toBeGreaterThan(0);
    const refused = await rt.call("echo", { v: nested(900) }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ValidationError);
    expect(await rt.call("echo", { v: nested(62) })).toEqual({ v: nested(62) });
    await stillServing(pid);
  });
});

// The same through raw frames, which no client-side check stops: the runtime answers each.
describe("raw hostile frames over zeromq", () => {
  let manual: Awaited<ReturnType<typeof spawnManual>>;
  let rt: Runtime;
  let raw: Dealer;

  beforeAll(async () => {
    manual = await spawnManual(["--max-message-bytes", String(LIMIT)]);
    rt = await Runtime.connect({ connectionFile: manual.connectionFile, key: manual.key.toString("hex") });
    raw = new Dealer({ linger: 0 });
    raw.connect(rt.endpoints.request);
  });
  afterAll(async () => {
    raw?.close();
    await rt?.close();
    manual?.kill();
    if (manual) rmSync(manual.dir, { recursive: true, force: true });
  });

  async function answer(header: ReturnType<typeof makeHeader>, content: Buffer, buffers: Uint8Array[] = []): Promise<{ msg_type: string; ename?: string; code?: string }> {
    const tag = Buffer.from(PROTOCOL_TAG);
    const head = Buffer.from(JSON.stringify(header));
    await raw.send([tag, Buffer.from(sign(manual.key, [tag, head, content])), head, content, ...buffers]);
    for (;;) {
      const frames = await settle(raw.receive(), `an answer to ${content.subarray(0, 80).toString()}`);
      if (!frames.ok) throw frames.error;
      const got = frames.value as Buffer[];
      const h = JSON.parse(got[2]!.toString()) as { msg_type: string; parent_id: string };
      if (h.parent_id === header.msg_id) return { msg_type: h.msg_type, ...(JSON.parse(got[3]!.toString()) as { ename?: string; code?: string }) };
    }
  }

  it("answers hostile shapes and nesting with a ProtocolError, and serves on", async () => {
    const rand = prng(7);
    const shapes: unknown[] = [[2 ** 53 - 1, 2 ** 53 - 1, 0], [2 ** 64, 0], new Array(33).fill(1), [-1], [true], "4"];
    for (let i = 0; i < 30; i++) shapes.push(Array.from({ length: 1 + Math.floor(rand() * 4) }, () => [0, 1, 2 ** 31, 2 ** 53 - 1, 2 ** 62][Math.floor(rand() * 5)]));
    for (const shape of shapes) {
      const header = makeHeader({ msgType: "call_request", session: "raw", signedBuffers: false, buffers: [{ dtype: "float32", shape: shape as number[], nbytes: 0 }] });
      const r = await answer(header, Buffer.from('{"method":"echo","params":{"x":{"$tensor":0}}}'), [new Uint8Array(0)]);
      // a shape that is fine and empty is echoed; every other one is a bad_tensor
      if (r.msg_type !== "result") expect(r, JSON.stringify(shape)).toMatchObject({ msg_type: "error", ename: "ProtocolError", code: "bad_tensor" });
    }
    for (const depth of [900, 100_000]) {
      const header = makeHeader({ msgType: "call_request", session: "raw", signedBuffers: false, msgId: newId() });
      const r = await answer(header, Buffer.from(`{"method":"echo","params":{"v":${"[".repeat(depth)}${"]".repeat(depth)}}}`));
      expect(r).toMatchObject({ msg_type: "error", ename: "ProtocolError", code: "malformed" });
    }
    expect(await rt.call("echo", { still: "serving" })).toEqual({ still: "serving" });
    expect(processAlive(manual.pid)).toBe(true);
    expect(rt.dropped).toEqual({ malformed: 0, oversized: 0, bad_signature: 0, replayed: 0 });
  });

  it("answers a genuine message over the limit by nothing (dropped, counted), and serves on", async () => {
    const before = (await rt.heartbeat()).dropped.oversized;
    const msg = { header: makeHeader({ msgType: "call_request", session: "raw", signedBuffers: false }), content: { method: "echo", params: { s: "x".repeat(LIMIT) } }, buffers: [] };
    await raw.send(encodeMessage(msg, manual.key));
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 20));
      after = (await rt.heartbeat()).dropped.oversized;
    }
    expect(after).toBe(before + 1);
    expect(await rt.call("echo", { ok: 1 })).toEqual({ ok: 1 });
  });
});
