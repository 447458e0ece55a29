// pythonia-only behaviour: hostile frames through its submit path (the ZeroMQ suite sends
// them through a raw DEALER), one shared Python per Node process, the automatic fallback.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StartError } from "../errors.ts";
import { PROTOCOL_TAG } from "../protocol/version.ts";
import { encodeMessage, makeHeader, newId, sign } from "../protocol/wire.ts";
import { REPO_ROOT, defaultPython } from "../runtime/process.ts";
import { Runtime } from "../runtime/runtime.ts";
import { Tensor } from "../tensor.ts";
import { AsyncQueue } from "./queue.ts";
import { PythoniaTransport, pythoniaChild, pythoniaEndpoint } from "./pythonia.ts";
import type { Channel, IncomingFrames, Transport } from "./transport.ts";

const MAX = 64 * 1024;

/** Hands every incoming message to the Runtime and keeps a copy for the test. */
class Tee implements Transport {
  readonly name: string;
  readonly seen: IncomingFrames[] = [];
  private readonly out = new AsyncQueue<IncomingFrames>();
  constructor(private readonly inner: PythoniaTransport) {
    this.name = inner.name;
    void (async () => {
      for await (const m of inner.incoming()) {
        this.seen.push(m);
        this.out.push(m);
      }
      this.out.end();
    })();
  }
  get closed(): boolean {
    return this.inner.closed;
  }
  send(channel: Channel, frames: Uint8Array[]): Promise<void> {
    return this.inner.send(channel, frames);
  }
  incoming(): AsyncIterable<IncomingFrames> {
    return this.out;
  }
  close(): void {
    this.inner.close();
  }
}

describe("hostile frames over pythonia's submit path", () => {
  let transport: PythoniaTransport;
  let tee: Tee;
  let rt: Runtime;

  beforeAll(async () => {
    transport = await PythoniaTransport.open({ python: defaultPython(), signedBuffers: true, maxMessageBytes: MAX });
    tee = new Tee(transport);
    const endpoints = { request: pythoniaEndpoint(transport.pid, "request"), control: pythoniaEndpoint(transport.pid, "control") };
    rt = await Runtime.connect({ ...endpoints, key: Buffer.from(transport.key).toString("hex"), allowRemote: true }, async () => tee);
  });
  afterAll(async () => {
    await rt?.close();
    await transport?.released;
  });

  const raw = (channel: Channel, frames: Uint8Array[]) => transport.send(channel, frames);
  const heartbeatFrames = (key: Uint8Array) =>
    encodeMessage({ header: makeHeader({ msgType: "heartbeat_request", session: "raw", signedBuffers: false }), content: {}, buffers: [] }, key);

  async function droppedAfter(send: () => Promise<void>): Promise<Record<string, number>> {
    const before = (await rt.heartbeat()).dropped as Record<string, number>;
    await send();
    // Both channels are handled in submit order on pythonia's one thread: a heartbeat
    // sent after the message is answered after it was counted.
    const after = (await rt.heartbeat()).dropped as Record<string, number>;
    return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
  }

  async function replyTo(msgId: string): Promise<{ header: Record<string, unknown>; content: Record<string, unknown> }> {
    for (let i = 0; i < 200; i++) {
      for (const m of tee.seen) {
        const header = JSON.parse(Buffer.from(m.frames[2] as Uint8Array).toString()) as Record<string, unknown>;
        if (header.parent_id === msgId) return { header, content: JSON.parse(Buffer.from(m.frames[3] as Uint8Array).toString()) as Record<string, unknown> };
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`no reply to ${msgId}`);
  }

  it("was opened with the options given", () => {
    expect(rt.transport).toBe("pythonia");
    expect(rt.hello.signed_buffers).toBe(true);
    expect(rt.hello.max_message_bytes).toBe(MAX);
    expect(rt.pid).toBe(transport.pid);
  });

  it("drops a message whose signed tensor bytes were changed", async () => {
    const t = Tensor.from([1, 2, 3, 4]);
    const header = makeHeader({ msgType: "call_request", session: "raw", signedBuffers: true, buffers: [{ dtype: "float32", shape: [4], nbytes: 16 }] });
    const f = encodeMessage({ header, content: { method: "echo", params: { t: { $tensor: 0 } } }, buffers: [t.bytes()] }, transport.key);
    f[4] = Buffer.from(f[4] as Uint8Array);
    (f[4] as Buffer)[0]! ^= 1;
    expect(await droppedAfter(() => raw("request", f))).toMatchObject({ bad_signature: 1 });
  });

  it("drops tensor bytes left unsigned on a runtime that signs them (the connection decides, not the header)", async () => {
    const header = makeHeader({ msgType: "call_request", session: "raw", signedBuffers: false, buffers: [{ dtype: "float32", shape: [1], nbytes: 4 }] });
    const f = encodeMessage({ header, content: { method: "echo", params: { t: { $tensor: 0 } } }, buffers: [new Uint8Array(4)] }, transport.key);
    expect(await droppedAfter(() => raw("request", f))).toMatchObject({ bad_signature: 1 });
  });

  it("drops unsigned frames, frames signed with another key, and forged content", async () => {
    const unsigned = heartbeatFrames(transport.key);
    unsigned[1] = Buffer.from("0".repeat(64));
    expect(await droppedAfter(() => raw("control", unsigned))).toMatchObject({ bad_signature: 1 });
    expect(await droppedAfter(() => raw("request", heartbeatFrames(randomBytes(32))))).toMatchObject({ bad_signature: 1 });
    const forged = heartbeatFrames(transport.key);
    forged[3] = Buffer.from('{"evil":true}');
    expect(await droppedAfter(() => raw("control", forged))).toMatchObject({ bad_signature: 1 });
  });

  it("does not shut down for a shutdown_request signed with another key", async () => {
    const f = encodeMessage({ header: makeHeader({ msgType: "shutdown_request", session: "raw", signedBuffers: false }), content: {}, buffers: [] }, randomBytes(32));
    expect(await droppedAfter(() => raw("control", f))).toMatchObject({ bad_signature: 1 });
    expect(await rt.call("echo", { alive: true })).toEqual({ alive: true });
  });

  it("answers a message once and drops its replay", async () => {
    const f = heartbeatFrames(transport.key);
    const msgId = (JSON.parse(Buffer.from(f[2] as Uint8Array).toString()) as { msg_id: string }).msg_id;
    await raw("control", f);
    expect((await replyTo(msgId)).header.msg_type).toBe("heartbeat_reply");
    expect(await droppedAfter(() => raw("control", f))).toMatchObject({ replayed: 1 });
  });

  it("drops oversized and malformed messages", async () => {
    const big = Tensor.zeros([MAX / 4 + 16]);
    const header = makeHeader({ msgType: "call_request", session: "raw", signedBuffers: true, buffers: [{ dtype: "float32", shape: big.shape, nbytes: big.nbytes }] });
    const msg = { header, content: { method: "echo", params: { t: { $tensor: 0 } } }, buffers: [big.bytes()] };
    expect(await droppedAfter(() => raw("request", encodeMessage(msg, transport.key)))).toMatchObject({ oversized: 1 });
    expect(await droppedAfter(() => raw("request", [Buffer.from(PROTOCOL_TAG), Buffer.from("x")]))).toMatchObject({ malformed: 1 });
    const tag = Buffer.from(PROTOCOL_TAG);
    const h = Buffer.from("not json");
    const c = Buffer.from("{}");
    expect(await droppedAfter(() => raw("control", [tag, Buffer.from(sign(transport.key, [tag, h, c])), h, c]))).toMatchObject({ malformed: 1 });
  });

  it("keeps serving after all of that", async () => {
    expect(await rt.call("echo", { still: "here" })).toEqual({ still: "here" });
    expect(rt.dropped).toEqual({ malformed: 0, oversized: 0, bad_signature: 0, replayed: 0 });
  });
});

describe("one Python process per Node process", () => {
  it("serves two runtimes side by side in it, each with its own key, and ends it with the last", async () => {
    const a = await Runtime.start({ transport: "pythonia" });
    const b = await Runtime.start({ transport: "pythonia", workers: 3 });
    expect(a.pid).toBe(b.pid);
    expect(a.hello.session).not.toBe(b.hello.session);
    const child = pythoniaChild();
    expect(child?.pid).toBe(a.pid);
    const [ra, rb] = await Promise.all([a.call("echo", { who: "a" }), b.call("echo", { who: "b" })]);
    expect([ra, rb]).toEqual([{ who: "a" }, { who: "b" }]);
    await a.close();
    expect(child?.exitCode).toBeNull();
    expect(await b.call("echo", { still: "b" })).toEqual({ still: "b" });
    await b.close();
    expect(child?.exitCode !== null || child?.signalCode !== null).toBe(true);
  });

  it("refuses a second interpreter while the first one runs, and names both", async () => {
    const a = await Runtime.start({ transport: "pythonia" });
    try {
      const err = await Runtime.start({ transport: "pythonia", python: "python3" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StartError);
      expect((err as StartError).message).toMatch(/one Python per Node process.*python3/);
    } finally {
      await a.close();
    }
  });

  it("reports an interpreter that cannot run with a StartError naming it", async () => {
    const err = await Runtime.start({ transport: "pythonia", python: "/nonexistent/python" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as StartError).message).toContain("/nonexistent/python");
  });
});

describe("transport: auto", () => {
  const script = join(REPO_ROOT, "ts", "src", "transport", "fixtures", "start-auto.ts");
  const hooks = join(REPO_ROOT, "ts", "src", "transport", "fixtures", "no-zeromq.mjs");
  const run = (args: string[]): Record<string, unknown> => {
    const out = spawnSync(process.execPath, ["--import", "tsx", ...args, script], { cwd: REPO_ROOT, encoding: "utf8", timeout: 90_000 });
    const line = out.stdout.trim().split("\n").pop() ?? "";
    expect(line, out.stderr).not.toBe("");
    return JSON.parse(line) as Record<string, unknown>;
  };

  it("falls back to pythonia with a warning where the zeromq addon cannot load", () => {
    const out = run(["--import", hooks]);
    expect(out).toMatchObject({ transport: "pythonia", echoed: { ok: 1 } });
    expect(out.warnings).toEqual([expect.stringContaining("zeromq native addon cannot load")]);
  });

  it("uses zeromq where it loads", () => {
    expect(run([])).toMatchObject({ transport: "zeromq", warnings: [] });
  });
});
