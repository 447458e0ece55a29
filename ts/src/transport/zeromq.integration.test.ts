// The ZeroMQ transport against a bare ROUTER (no runtime): a frame far over the client's
// limit is refused by ZeroMQ itself (ZMQ_MAXMSGSIZE) and never delivered, and the transport
// goes on working on a fresh connection.
import { afterEach, describe, expect, it } from "vitest";
import { Router } from "zeromq";
import { ZeroMQTransport } from "./zeromq.ts";
import type { IncomingFrames } from "./transport.ts";

const LIMIT = 1 << 20;

describe("ZeroMQ transport with maxMessageBytes", () => {
  const open: { close(): void }[] = [];
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  async function setup(): Promise<{ router: Router; transport: ZeroMQTransport; next: (ms: number) => Promise<IncomingFrames | undefined> }> {
    const router = new Router({ linger: 0 });
    await router.bind("tcp://127.0.0.1:*");
    const endpoint = router.lastEndpoint as string;
    const transport = await ZeroMQTransport.connect({ request: endpoint, control: endpoint }, { maxMessageBytes: LIMIT });
    open.push(router, transport);
    const it = transport.incoming()[Symbol.asyncIterator]();
    const next = async (ms: number): Promise<IncomingFrames | undefined> => {
      let timer: NodeJS.Timeout | undefined;
      const none = new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), ms)));
      const got = await Promise.race([it.next().then((r) => (r.done ? undefined : r.value)), none]);
      clearTimeout(timer);
      return got;
    };
    return { router, transport, next };
  }

  it("never delivers a frame far over the limit, and works again afterwards", async () => {
    const { router, transport, next } = await setup();
    await transport.send("request", [Buffer.from("hello")]);
    const [id] = await router.receive();
    // Just over the limit (within ZeroMQ's headroom): delivered, for the protocol layer to count.
    await router.send([id as Buffer, Buffer.alloc(LIMIT + 100)]);
    expect((await next(5000))?.frames[0]?.byteLength).toBe(LIMIT + 100);
    await router.send([id as Buffer, Buffer.alloc(64 << 20)]);
    // ZeroMQ cut that connection instead of taking the frame in; the transport says so and
    // connects anew (under a new identity).
    const reset = await next(5000);
    expect(reset).toMatchObject({ channel: "request", frames: [], reset: expect.stringContaining("maxMessageBytes") });
    await transport.send("request", [Buffer.from("again")]);
    const [id2, body] = await router.receive();
    expect(body?.toString()).toBe("again");
    await router.send([id2 as Buffer, Buffer.from("ok")]);
    expect((await next(5000))?.frames.map((f) => Buffer.from(f).toString())).toEqual(["ok"]);
  });

  it("sends in call order whether a send goes straight to ZeroMQ or waits behind others", async () => {
    const { router, transport } = await setup();
    const sent: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      // Text and bytes frames; some sends awaited (the next one goes straight out), most not.
      const p = transport.send("request", [`m${i}`, Buffer.from(String(i)), "é".repeat(i % 3)]);
      if (i % 17 === 0) await p;
      else sent.push(p);
    }
    await Promise.all(sent);
    for (let i = 0; i < 200; i++) {
      const [, a, b, c] = await router.receive();
      expect([a?.toString(), b?.toString(), c?.toString()]).toEqual([`m${i}`, String(i), "é".repeat(i % 3)]);
    }
  });

  it("hands messages to a listener, those that came before it too, and stays one consumer", async () => {
    const { router, transport } = await setup();
    await transport.send("request", ["hello"]);
    const [id] = await router.receive();
    await router.send([id as Buffer, Buffer.from("early")]);
    await new Promise((r) => setTimeout(r, 200)); // arrives before anyone listens
    const got: string[] = [];
    transport.listen((m) => {
      got.push(m.frames.map((f) => Buffer.from(f).toString()).join(","));
      if (got.length === 2) throw new Error("a failing listener must not stop the receiving");
    });
    for (const body of ["a", "b", "c"]) await router.send([id as Buffer, Buffer.from(body)]);
    for (let i = 0; i < 100 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual(["early", "a", "b", "c"]);
  });
});

