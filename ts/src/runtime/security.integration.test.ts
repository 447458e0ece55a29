import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { Runtime } from "./runtime.ts";
import { Tensor } from "../tensor.ts";
import { encodeMessage, makeHeader, newId, sign } from "../protocol/wire.ts";
import { PROTOCOL_TAG } from "../protocol/version.ts";
import { spawnManual, transports } from "./fixtures/helpers.ts";

const MAX = 64 * 1024;

// Raw frames through a ZeroMQ DEALER are intrinsically ZeroMQ; the same hostile frames go
// through pythonia's submit path in transport/pythonia.integration.test.ts.
describe.each(transports.filter((t) => t === "zeromq"))("hostile frames over %s", () => {
  let manual: Awaited<ReturnType<typeof spawnManual>>;
  let rt: Runtime;
  let raw: { request: Dealer; control: Dealer };

  beforeAll(async () => {
    // tcp loopback: signed buffers by default, so tampered tensor bytes are caught too.
    manual = await spawnManual(["--address", "tcp", "--max-message-bytes", String(MAX)]);
    rt = await Runtime.connect({ connectionFile: manual.connectionFile, key: manual.key.toString("hex") });
    raw = { request: new Dealer({ linger: 0 }), control: new Dealer({ linger: 0 }) };
    raw.request.connect(rt.endpoints.request);
    raw.control.connect(rt.endpoints.control);
  });
  afterAll(async () => {
    raw?.request.close();
    raw?.control.close();
    await rt?.close();
    manual?.kill();
    if (manual) rmSync(manual.dir, { recursive: true, force: true });
  });

  const heartbeatFrames = (key: Uint8Array) =>
    encodeMessage({ header: makeHeader({ msgType: "heartbeat_request", session: "raw", signedBuffers: false }), content: {}, buffers: [] }, key);

  async function droppedAfter(send: () => Promise<void>): Promise<Record<string, number>> {
    const before = (await rt.heartbeat()).dropped;
    await send();
    // The runtime handles messages in order per socket: a heartbeat from the same socket
    // kind answered after ours proves it was seen. Poll briefly across sockets.
    let after = before;
    for (let i = 0; i < 50; i++) {
      after = (await rt.heartbeat()).dropped;
      if (JSON.stringify(after) !== JSON.stringify(before)) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before as Record<string, number>)[k]!]));
  }

  it("was connected with Runtime.connect to a runtime started by hand", () => {
    expect(rt.hello.max_message_bytes).toBe(MAX);
    expect(rt.hello.pid).toBe(manual.pid);
    expect(rt.endpoints.request).toMatch(/^tcp:\/\/(127\.0\.0\.1|\[::1\]):\d+$/);
    expect(rt.hello.signed_buffers).toBe(true);
  });

  it("round trips tensors with signed buffers", async () => {
    const t = Tensor.from([1, 2, 3, 4], [2, 2], "int32");
    const out = await rt.call<{ t: Tensor }>("echo", { t });
    expect(Array.from(out.t.data as Int32Array)).toEqual([1, 2, 3, 4]);
  });

  it("drops a message whose signed tensor bytes were changed", async () => {
    const t = Tensor.from([1, 2, 3, 4]);
    const header = makeHeader({ msgType: "call_request", session: "raw", signedBuffers: true, buffers: [{ dtype: "float32", shape: [4], nbytes: 16 }] });
    const f = encodeMessage({ header, content: { method: "echo", params: { t: { $tensor: 0 } } }, buffers: [t.bytes()] }, manual.key);
    f[4] = Buffer.from(f[4] as Uint8Array);
    (f[4] as Buffer)[0]! ^= 1;
    expect(await droppedAfter(() => raw.request.send(f))).toMatchObject({ bad_signature: 1 });
  });

  it("drops tensor bytes left unsigned on a runtime that signs them (the connection decides, not the header)", async () => {
    const header = makeHeader({ msgType: "call_request", session: "raw", signedBuffers: false, buffers: [{ dtype: "float32", shape: [1], nbytes: 4 }] });
    const f = encodeMessage({ header, content: { method: "echo", params: { t: { $tensor: 0 } } }, buffers: [new Uint8Array(4)] }, manual.key);
    expect(await droppedAfter(() => raw.request.send(f))).toMatchObject({ bad_signature: 1 });
  });

  it("drops unsigned frames", async () => {
    const f = heartbeatFrames(manual.key);
    f[1] = Buffer.from("0".repeat(64));
    expect(await droppedAfter(() => raw.control.send(f))).toMatchObject({ bad_signature: 1 });
  });

  it("drops frames signed with another key", async () => {
    expect(await droppedAfter(() => raw.request.send(heartbeatFrames(randomBytes(32))))).toMatchObject({ bad_signature: 1 });
  });

  it("drops a forged content under a valid signature", async () => {
    const f = heartbeatFrames(manual.key);
    f[3] = Buffer.from('{"evil":true}');
    expect(await droppedAfter(() => raw.control.send(f))).toMatchObject({ bad_signature: 1 });
  });

  it("answers a message once and drops its replay", async () => {
    const f = heartbeatFrames(manual.key);
    await raw.control.send(f);
    const [, , header] = (await raw.control.receive()).map((b) => b.toString());
    expect(JSON.parse(header as string).msg_type).toBe("heartbeat_reply");
    expect(await droppedAfter(() => raw.control.send(f))).toMatchObject({ replayed: 1 });
  });

  it("drops oversized messages before hashing", async () => {
    const big = Tensor.zeros([MAX / 4 + 16]);
    const msg = {
      header: makeHeader({ msgType: "call_request", session: "raw", signedBuffers: false, buffers: [{ dtype: "float32" as const, shape: big.shape, nbytes: big.nbytes }] }),
      content: { method: "echo", params: { t: { $tensor: 0 } } },
      buffers: [big.bytes()],
    };
    expect(await droppedAfter(() => raw.request.send(encodeMessage(msg, manual.key)))).toMatchObject({ oversized: 1 });
  });

  it("drops malformed frames: too few, wrong tag, non-JSON header", async () => {
    expect(await droppedAfter(() => raw.request.send([PROTOCOL_TAG, "x"]))).toMatchObject({ malformed: 1 });
    const wrongTag = heartbeatFrames(manual.key);
    wrongTag[0] = Buffer.from("nearpos/9");
    expect(await droppedAfter(() => raw.control.send(wrongTag))).toMatchObject({ malformed: 1 });
    const tag = Buffer.from(PROTOCOL_TAG);
    const header = Buffer.from("not json");
    const content = Buffer.from("{}");
    expect(await droppedAfter(() => raw.control.send([tag, sign(manual.key, [tag, header, content]), header, content]))).toMatchObject({ malformed: 1 });
  });

  it("answers an authenticated message with a bad tensor with a ProtocolError", async () => {
    const msgId = newId();
    const header = makeHeader({ msgType: "call_request", session: "raw", signedBuffers: true, msgId, buffers: [{ dtype: "float32", shape: [4], nbytes: 16 }] });
    await raw.request.send(encodeMessage({ header, content: { method: "echo", params: { t: { $tensor: 0 } } }, buffers: [new Uint8Array(8)] }, manual.key));
    const frames = await raw.request.receive();
    const h = JSON.parse(frames[2]!.toString()) as { msg_type: string; parent_id: string };
    const c = JSON.parse(frames[3]!.toString()) as { ename: string };
    expect(h).toMatchObject({ msg_type: "error", parent_id: msgId });
    expect(c.ename).toBe("ProtocolError");
  });

  it("refuses params larger than the runtime accepts before sending them", async () => {
    const before = (await rt.heartbeat()).dropped.oversized;
    const err = await rt.call("echo", { t: Tensor.zeros([MAX / 4 + 1]) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "message_too_large", direction: "request", limit: MAX });
    expect((await rt.heartbeat()).dropped.oversized).toBe(before);
  });

  it("keeps serving after all of that", async () => {
    expect(await rt.call("echo", { still: "here" })).toEqual({ still: "here" });
    expect(rt.dropped).toEqual({ malformed: 0, oversized: 0, bad_signature: 0, replayed: 0 });
  });
});
