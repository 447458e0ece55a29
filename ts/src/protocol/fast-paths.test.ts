// The shortcuts taken for speed give what the plain paths give: ids, dates, text frames,
// signatures over text, content handed on without the tensor walk, the replay guard's
// pruning only when due, calls that make their event queue on first use.
import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CallState } from "../runtime/call.ts";
import { ReplayGuard } from "./replay.ts";
import { checkDescriptors, decodeTensors, isPlain } from "./tensors.ts";
import { decodeMessage, encodeMessage, frameMessage, isoDate, makeHeader, messageBytes, newId, sign, signFrames } from "./wire.ts";

const key = randomBytes(32);

describe("ids and dates", () => {
  it("ids are 32 random lowercase hex digits, all distinct across refills of the pool", () => {
    const ids = Array.from({ length: 5000 }, newId);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("isoDate equals Date.toISOString, the cached second included", () => {
    const start = Date.parse("2026-11-28T13:05:38.000Z");
    for (let i = 0; i < 5000; i++) {
      const t = start + i * 7 + (i % 3) * 999; // crosses many seconds, revisits some
      expect(isoDate(t)).toBe(new Date(t).toISOString());
    }
    for (const t of [0, 999, 1000, Date.parse("1999-12-31T23:59:59.999Z"), Date.parse("2100-01-01T00:00:00.001Z")]) {
      expect(isoDate(t)).toBe(new Date(t).toISOString());
    }
  });
});

describe("text frames", () => {
  const reference = (frames: Uint8Array[]): string => {
    const h = createHmac("sha256", key);
    for (const f of frames) {
      const len = Buffer.alloc(8);
      len.writeBigUInt64BE(BigInt(f.byteLength));
      h.update(len).update(f);
    }
    return h.digest("hex");
  };

  it("a text frame is signed and counted as its UTF-8 bytes", () => {
    const texts = ["", "ascii", 'é "quoted" \u2028 😀', "x".repeat(70_000), "é".repeat(40_000)];
    for (const t of texts) {
      const frames = [Buffer.from("nearpos/1"), t, randomBytes(100_000), "tail é"];
      const bytes = frames.map((f) => (typeof f === "string" ? Buffer.from(f, "utf8") : f));
      expect(sign(key, frames)).toBe(reference(bytes));
      expect(messageBytes(frames)).toBe(bytes.reduce((n, f) => n + f.byteLength, 0));
    }
  });

  it("the one-shot HMAC equals a Hmac object for short messages, any key length", () => {
    for (const k of [randomBytes(32), randomBytes(1), randomBytes(64), randomBytes(100)]) {
      const frames = [Buffer.from("nearpos/1"), "header é", randomBytes(300)];
      const h = createHmac("sha256", k);
      for (const f of frames) {
        const b = typeof f === "string" ? Buffer.from(f, "utf8") : f;
        const len = Buffer.alloc(8);
        len.writeBigUInt64BE(BigInt(b.byteLength));
        h.update(len).update(b);
      }
      const want = h.digest("hex");
      expect(sign(k, frames)).toBe(want);
      expect(sign(k, frames)).toBe(want); // again, with the key's pads cached
    }
  });

  it("frameMessage + signFrames is encodeMessage, as text", () => {
    for (const signed of [false, true]) {
      const msg = {
        header: makeHeader({ msgType: "call_request", session: "s", signedBuffers: signed, buffers: [{ dtype: "uint8" as const, shape: [3], nbytes: 3 }] }),
        content: { method: "echo", params: { s: "é\u2028", n: [1, 2.5, null], t: { $tensor: 0 } } },
        buffers: [new Uint8Array([1, 2, 3])],
      };
      const text = signFrames(frameMessage(msg), key, signed);
      const bytes = encodeMessage(msg, key);
      expect(text.map((f) => Buffer.from(typeof f === "string" ? Buffer.from(f, "utf8") : f).toString("hex"))).toEqual(
        bytes.map((f) => Buffer.from(f).toString("hex")),
      );
      expect(decodeMessage(bytes, { key, signedBuffers: signed, maxMessageBytes: 1 << 20 }).ok).toBe(true);
    }
  });
});

describe("content handed on without the tensor walk", () => {
  const decoded = (content: string, buffers: Uint8Array[] = [], descriptors: unknown[] = []) => {
    const header = makeHeader({ msgType: "result", session: "s", signedBuffers: false, parentId: "p" });
    (header as { buffers: unknown[] }).buffers = descriptors;
    const headerText = JSON.stringify(header);
    const frames = [Buffer.from("nearpos/1"), Buffer.alloc(0), Buffer.from(headerText), Buffer.from(content), ...buffers];
    frames[1] = Buffer.from(sign(key, [frames[0]!, frames[2]!, frames[3]!]));
    const r = decodeMessage(frames, { key, signedBuffers: false, maxMessageBytes: 1 << 20 });
    if (!r.ok) throw new Error(r.reason);
    const walk = (): unknown => {
      try {
        return decodeTensors(r.message.content, checkDescriptors(r.message.header.buffers, r.message.buffers), r.message.buffers);
      } catch (err) {
        return `threw: ${(err as Error).message}`;
      }
    };
    return { plain: isPlain(r.message), content: r.message.content, walked: walk() };
  };

  it("takes the shortcut only where the walk returns an equal copy", () => {
    const cases: [string, boolean][] = [
      ['{"value":{"i":1}}', true],
      ['{"value":[1,{"a":[null,true,"x"]},"[[{{"],"$tensor":"text"}', false], // "$tensor" in the text
      ['{"value":{"$tensor":0}}', false],
      ['{"value":{"\\u0024tensor":0}}', false], // an escaped placeholder key
      ['{"value":"\\u00e9"}', false],
      [`{"value":${"[".repeat(63)}${"]".repeat(63)}}`, true], // 64 levels
      [`{"value":${"[".repeat(64)}${"]".repeat(64)}}`, false], // 65
      ['{"value":"{{{{"}', true],
    ];
    for (const [text, plain] of cases) {
      const d = decoded(text);
      expect(d.plain, text).toBe(plain);
      if (d.plain) expect(d.content).toEqual(d.walked);
    }
  });

  it("never with buffers", () => {
    const d = decoded('{"value":1}', [new Uint8Array(4)], [{ dtype: "float32", shape: [1], nbytes: 4 }]);
    expect(d.plain).toBe(false);
  });
});

describe("replay guard", () => {
  it("pruning only when due equals pruning on every message", () => {
    let now = Date.parse("2026-01-01T00:00:00.000Z");
    const window = 1000;
    const lazy = new ReplayGuard(window, () => now);
    const eager = new ReplayGuard(window, () => now);
    const eagerAccept = (id: string, date: string): boolean => {
      (eager as unknown as { oldest: number }).oldest = Number.NEGATIVE_INFINITY; // always due
      return eager.accept(id, date);
    };
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ids: string[] = [];
    for (let i = 0; i < 3000; i++) {
      now += [1, 10, 300, 900][Math.floor(rand() * 4)] as number;
      const id = ids.length > 0 && rand() < 0.1 ? (ids[Math.floor(rand() * ids.length)] as string) : `id${i}`;
      ids.push(id);
      const date = new Date(now + (rand() - 0.8) * 1.3 * window).toISOString();
      expect(lazy.accept(id, date, Date.parse(date))).toBe(eagerAccept(id, date));
      expect(lazy.size).toBe(eager.size);
    }
  });
});

describe("CallState", () => {
  it("keeps events that came before anyone asked for them, in order, and ends with the call", async () => {
    const state = new CallState<number>("id", "m");
    state.event({ type: "tick", seq: 1, data: {} });
    state.event({ type: "tick", seq: 0, data: {} });
    state.resolve(3);
    const seen: number[] = [];
    for await (const e of state.events) seen.push(e.seq);
    expect(seen).toEqual([0, 1]);
    expect(await state.result).toBe(3);
    const quiet = new CallState<number>("id2", "m");
    quiet.resolve(1);
    const none: unknown[] = [];
    for await (const e of quiet.events) none.push(e);
    expect(none).toEqual([]);
  });

  it("runs onDone, then the onSettle functions, once", () => {
    const order: string[] = [];
    const state = new CallState("id", "m", undefined, (id) => order.push(`done ${id}`));
    state.onSettle(() => order.push("settle"));
    state.reject(new Error("x"));
    state.resolve(1);
    state.onSettle(() => order.push("late"));
    expect(order).toEqual(["done id", "settle", "late"]);
  });
});
