import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Runtime } from "./runtime.ts";
import { DTYPES, Tensor, type DType } from "../tensor.ts";
import { CancelledError, PythonError, TimeoutError, UnknownMethodError, ValidationError } from "../errors.ts";
import type { RuntimeEvent } from "../protocol/messages.ts";
import { transports } from "./fixtures/helpers.ts";

function sample(dtype: DType, shape: number[]): Tensor {
  const t = Tensor.zeros(shape, dtype);
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    if (d instanceof BigInt64Array) d[i] = BigInt(i) * 1_000_000_007n - 3n;
    else if (dtype === "bool") d[i] = i % 3 === 0 ? 1 : 0;
    else if (dtype === "float16" || dtype === "bfloat16") d[i] = (0x3c00 + i) & 0xffff;
    else (d as Float32Array)[i] = dtype.startsWith("float") ? i * 0.5 - 7.25 : (i * 37) % 100 - 50;
  }
  return t;
}

describe.each(transports)("Runtime over %s", (transport) => {
  let rt: Runtime;
  const logs: string[] = [];
  beforeAll(async () => {
    rt = await Runtime.start({ transport, onLog: (e) => logs.push(e.line) });
    expect(rt.transport).toBe(transport);
  });
  afterAll(async () => {
    await rt?.close();
  });

  it("says hello with the protocol version and built-in methods", () => {
    expect(rt.hello.protocol_version.split(".")[0]).toBe("1");
    expect(rt.methods).toEqual(expect.arrayContaining(["echo", "sleep", "bytes_in", "bytes_out", "mine", "loss"]));
    expect(rt.hello.pid).toBeGreaterThan(0);
  });

  it("passes the runtime's log lines to onLog from spawn on", () => {
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.join("\n")).toContain(String(rt.pid));
  });

  it.each(DTYPES)("echoes a %s tensor bit for bit, including empty and scalar ones", async (dtype) => {
    const params = { a: sample(dtype, [3, 5]), empty: sample(dtype, [0, 4]), scalar: sample(dtype, []), nested: [{ b: sample(dtype, [7]) }] };
    const out = await rt.call<typeof params>("echo", params);
    for (const [got, want] of [
      [out.a, params.a],
      [out.empty, params.empty],
      [out.scalar, params.scalar],
      [out.nested[0]?.b, params.nested[0]?.b],
    ] as [Tensor, Tensor][]) {
      expect(got).toBeInstanceOf(Tensor);
      expect(got.dtype).toBe(dtype);
      expect(got.shape).toEqual(want.shape);
      expect(Buffer.from(got.bytes()).equals(Buffer.from(want.bytes()))).toBe(true);
    }
  });

  it("echoes a 64 MiB tensor", async () => {
    const n = (64 * 1024 * 1024) / 4;
    const t = Tensor.zeros([n], "float32");
    for (let i = 0; i < n; i += 4099) t.data[i] = i;
    t.data[n - 1] = 42;
    const out = await rt.call<{ t: Tensor<"float32"> }>("echo", { t });
    expect(out.t.shape).toEqual([n]);
    expect(out.t.data[n - 1]).toBe(42);
    expect(out.t.data[4099 * 100]).toBe(4099 * 100);
    expect(Buffer.from(out.t.bytes()).equals(Buffer.from(t.bytes()))).toBe(true);
  });

  it("moves bytes both ways with bytes_in and bytes_out", async () => {
    const nbytes = 1 << 20;
    expect(await rt.call("bytes_in", { tensor: Tensor.zeros([nbytes / 4]) })).toEqual({ nbytes });
    const back = await rt.call<Tensor>("bytes_out", { nbytes, dtype: "int16" });
    expect(back.dtype).toBe("int16");
    expect(back.nbytes).toBe(nbytes);
  });

  it("turns a Python exception into a PythonError with its traceback", async () => {
    const err = await rt.call("checkpoint_load", { path: "/nonexistent/nearpos.pt" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PythonError);
    const pe = err as PythonError;
    expect(pe.code).toBe("python_error");
    expect(pe.ename.length).toBeGreaterThan(0);
    expect(pe.evalue).toContain("/nonexistent/nearpos.pt");
    expect(pe.traceback.join("\n")).toContain("Traceback");
  });

  it("maps the runtime's InvalidParams to code invalid_params", async () => {
    const err = await rt
      .mine({ sampler: "nearest-positive", embeddings: Tensor.zeros([4, 2]), labels: Tensor.from([0, 1, 0], [3], "int64") })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PythonError);
    expect((err as PythonError).code).toBe("invalid_params");
    expect((err as PythonError).evalue).toContain("labels");
  });

  it("mines triplets with typed index tensors", async () => {
    const emb = Tensor.from(Array.from({ length: 16 }, (_, i) => Math.sin(i)), [8, 2]);
    const labels = Tensor.from([0, 0, 1, 1, 0, 0, 1, 1], [8], "int64");
    const r = await rt.mine({ sampler: "nearest-positive", embeddings: emb, labels });
    expect(r.indices.anchors).toBeInstanceOf(Tensor);
    expect(r.indices.anchors.dtype).toBe("int64");
    expect(r.indices.positives.size).toBe(r.indices.anchors.size);
    expect(r.indices.anchors.size).toBeGreaterThan(0);
    const l = await rt.loss({ loss: "triplet", sampler: "nearest-positive", embeddings: emb, labels });
    expect(Number.isFinite(l.value)).toBe(true);
  });

  it("refuses bad params with a ValidationError before sending", async () => {
    const before = (await rt.heartbeat()).running.length;
    const err = await rt.call("bytes_out", { nbytes: 8, dtype: "complex64" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    const ve = err as ValidationError;
    expect(ve.code).toBe("invalid_config");
    expect(ve.field).toBe("params.dtype");
    expect(ve.allowed).toEqual(expect.arrayContaining(["float32", "int64"]));
    expect(() => rt.stream("sleep", { seconds: -1 })).toThrow(/params\.seconds/);
    expect(() => rt.stream("sleep", { seconds: 1, extra: 1 })).toThrow(/params\.extra/);
    expect((await rt.heartbeat()).running.length).toBe(before);
  });

  it("refuses an unknown method without a round trip, listing the known ones", () => {
    const t0 = performance.now();
    let err: unknown;
    try {
      rt.stream("ecko", {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnknownMethodError);
    expect((err as UnknownMethodError).code).toBe("unknown_method");
    expect((err as UnknownMethodError).known).toContain("echo");
    expect(performance.now() - t0).toBeLessThan(50);
  });

  it("streams events in order and cancels a long sleep; the next call is served", async () => {
    const ac = new AbortController();
    const call = rt.stream<{ slept: number }>("sleep", { seconds: 30, tick: 0.01 }, { signal: ac.signal });
    const seen: RuntimeEvent[] = [];
    for await (const e of call.events) {
      seen.push(e);
      if (seen.length === 5) ac.abort();
    }
    const err = await call.result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledError);
    expect(seen.slice(0, 5).map((e) => [e.type, e.seq])).toEqual([0, 1, 2, 3, 4].map((i) => ["tick", i]));
    expect(seen.every((e, i) => e.seq === i)).toBe(true);
    // The runtime may send the terminal message a moment before it forgets the call.
    const t0 = Date.now();
    while ((await rt.heartbeat()).running.includes(call.id) && Date.now() - t0 < 1000);
    expect((await rt.heartbeat()).running).not.toContain(call.id);
    expect(await rt.call("echo", { ok: true })).toEqual({ ok: true });
  });

  it("cancels a call aborted right after it was sent", async () => {
    const ac = new AbortController();
    const p = rt.call("sleep", { seconds: 30 }, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(CancelledError);
  });

  it("times out a call and cancels it on the runtime", async () => {
    const call = rt.stream("sleep", { seconds: 30 }, { timeoutMs: 200 });
    await expect(call.result).rejects.toBeInstanceOf(TimeoutError);
    const t0 = Date.now();
    while ((await rt.heartbeat()).running.includes(call.id) && Date.now() - t0 < 3000);
    expect((await rt.heartbeat()).running).not.toContain(call.id);
  });

  it("answers 64 requests in flight, each with its own result", async () => {
    const calls = Array.from({ length: 64 }, (_, i) => rt.call<{ i: number; t: Tensor<"int32"> }>("echo", { i, t: Tensor.from([i, i * 2], [2], "int32") }));
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      expect(r.i).toBe(i);
      expect(Array.from(r.t.data)).toEqual([i, i * 2]);
    });
  });

  it("serves heartbeat on the control channel while a call runs", async () => {
    const controller = new AbortController();
    const call = rt.stream("sleep", { seconds: 30, tick: 0.05 }, { signal: controller.signal });
    let settled = false;
    const done = call.result.then(
      () => (settled = true),
      () => (settled = true),
    );
    // The first tick proves the call is running before the heartbeat is sent.
    for await (const ev of call.events) if (ev.type === "tick") break;
    const hb = await rt.heartbeat();
    // Answered while the call still runs: the control channel does not queue behind it.
    expect(settled).toBe(false);
    expect(hb.running).toContain(call.id);
    expect(hb.dropped).toEqual({ malformed: 0, oversized: 0, bad_signature: 0, replayed: 0 });
    controller.abort();
    await expect(call.result).rejects.toMatchObject({ code: "cancelled" });
    await done;
  });
});
