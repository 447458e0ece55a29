import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import { ClosedError, RuntimeExitedError, RuntimeUnreachableError, StartError, ValidationError } from "../errors.ts";
import { Runtime } from "./runtime.ts";
import { REPO_ROOT, sleep } from "./process.ts";
import { processAlive, spawnManual, transports, waitGone } from "./fixtures/helpers.ts";

// The private directory of a ZeroMQ runtime; pythonia has none (nothing to leave behind).
function ipcDir(rt: Runtime): string | undefined {
  return rt.transport === "zeromq" ? dirname(rt.endpoints.request.replace(/^ipc:\/\//, "")) : undefined;
}

describe.each(transports)("runtime lifecycle over %s", (transport) => {
  it("rejects every pending call within 2 s when the runtime is SIGKILLed, and later calls at once", async () => {
    const rt = await Runtime.start({ transport });
    const exits: unknown[] = [];
    rt.on("exit", (e) => exits.push(e));
    const iterated: string[] = [];
    const iterating = (async () => {
      for await (const e of rt.events()) iterated.push(e.type);
    })();
    const pending = [
      ...Array.from({ length: 4 }, () => rt.call("sleep", { seconds: 30 })),
      rt.call("sleep", { seconds: 30 }, { signal: new AbortController().signal }),
    ];
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    process.kill(rt.pid, "SIGKILL");
    const results = await Promise.allSettled(pending);
    expect(Date.now() - t0).toBeLessThan(2000);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const err = (r as PromiseRejectedResult).reason as RuntimeExitedError;
      expect(err).toBeInstanceOf(RuntimeExitedError);
      expect(err.code).toBe("runtime_exited");
      expect(err.signal).toBe("SIGKILL");
      expect(err.stderrTail.length).toBeGreaterThan(0);
    }
    const later = await rt.call("echo", {}).catch((e: unknown) => e);
    expect(later).toBeInstanceOf(RuntimeExitedError);
    expect(exits).toEqual([expect.objectContaining({ type: "exit", signal: "SIGKILL", expected: false })]);
    await iterating; // the iterator ends once the runtime is gone
    expect(iterated).toContain("exit");
    await rt.close();
    const dir = ipcDir(rt);
    if (dir) expect(existsSync(dir)).toBe(false);
  });

  it("close() leaves no process, socket or directory, and is idempotent", async () => {
    const rt = await Runtime.start({ transport });
    expect(rt.transport).toBe(transport);
    const pid = rt.pid;
    const dir = ipcDir(rt);
    if (dir) expect(existsSync(join(dir, "connection.json"))).toBe(true);
    const inflight = rt.call("sleep", { seconds: 30 }).catch((e: unknown) => e);
    // `await using` calls Symbol.asyncDispose: the same close, run once.
    await Promise.all([rt.close(), rt[Symbol.asyncDispose](), rt.close()]);
    await rt.close();
    expect(processAlive(pid)).toBe(false);
    if (dir) expect(existsSync(dir)).toBe(false);
    const inflightErr = await inflight;
    expect(inflightErr, String(inflightErr)).toMatchObject({ code: expect.stringMatching(/^(cancelled|closed)$/) });
    await expect(rt.call("echo", {})).rejects.toBeInstanceOf(ClosedError);
    expect(rt.alive).toBe(false);
  });

  it("stops the runtime within 2 s when its TS parent is SIGKILLed", async () => {
    const script = join(REPO_ROOT, "ts", "src", "runtime", "fixtures", "start-and-print-pid.ts");
    // One node process (the tsx binary would add a parent that SIGKILL does not reach through).
    const child = spawn(process.execPath, ["--import", "tsx", script, transport], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`script exited with ${code}`)));
    });
    const { pid, request } = JSON.parse(line) as { pid: number; request: string };
    expect(processAlive(pid)).toBe(true);
    child.kill("SIGKILL");
    const took = await waitGone(pid, 2000);
    expect(took).toBeGreaterThanOrEqual(0);
    if (request.startsWith("ipc://")) {
      // The killed parent could not remove its private directory: the runtime did, on its way out.
      const dir = dirname(request.replace(/^ipc:\/\//, ""));
      const left = existsSync(dir);
      rmSync(dir, { recursive: true, force: true });
      expect(left, `${dir} was left behind`).toBe(false);
    }
  });

  it("reports an interpreter that cannot run the runtime with a StartError naming it", async () => {
    // node is no Python: the start-up check says so before the runtime is spawned.
    const err = await Runtime.start({ env: { PYTHONPATH: "/nonexistent" }, python: process.execPath }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartError);
    expect((err as StartError).reason).toBe("python_unusable");
    expect((err as StartError).message).toContain(process.execPath);
    const missing = await Runtime.start({ python: "/nonexistent/python" }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(StartError);
    expect((missing as StartError).reason).toBe("python_not_found");
    expect((missing as StartError).missing).toEqual(["/nonexistent/python"]);
  });

  it("validates start options, naming the field and allowed values", async () => {
    const err = await Runtime.start({ address: "udp" as "ipc" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe("options.address");
    expect((err as ValidationError).allowed).toEqual(["ipc", "tcp"]);
    await expect(Runtime.start({ startTimeoutMs: -5 })).rejects.toMatchObject({ field: "options.startTimeoutMs" });
    await expect(Runtime.start({ bogus: 1 } as never)).rejects.toMatchObject({ code: "invalid_config", message: expect.stringContaining("bogus") });
    expect(StartError).toBeDefined();
  });

  it("refuses a non-loopback endpoint unless allowRemote", async () => {
    const key = "00".repeat(32);
    await expect(Runtime.connect({ request: "tcp://10.1.2.3:5000", control: "tcp://10.1.2.3:5001", key })).rejects.toMatchObject({
      field: "options.allowRemote",
    });
  });
});

// A stall (SIGSTOP) of `pid` under `rt`, a handle watching heartbeats every 200 ms, 3 misses:
// calls reject with runtime_unreachable while it lasts; after SIGCONT the handle says
// `reachable`, serves again, and the call it gave up on was cancelled in the runtime.
async function expectStallAndRecovery(rt: Runtime, pid: number): Promise<void> {
  const seen: string[] = [];
  rt.on("unreachable", () => seen.push("unreachable"));
  const reachable = new Promise<number>((res) => rt.on("reachable", (e) => (seen.push("reachable"), res(e.afterMs))));
  const pending = rt.call("sleep", { seconds: 30 });
  await sleep(100);
  const t0 = Date.now();
  process.kill(pid, "SIGSTOP");
  const err = await pending.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RuntimeUnreachableError);
  expect(Date.now() - t0).toBeLessThan(200 * 4 + 1000);
  await expect(rt.call("echo", {})).rejects.toMatchObject({ code: "runtime_unreachable" });
  expect(rt.alive).toBe(false);
  await sleep(600); // stalled for a while longer
  process.kill(pid, "SIGCONT");
  const afterMs = await Promise.race([reachable, sleep(5000).then(() => -1)]);
  expect(afterMs, "no reachable event within 5 s of SIGCONT").toBeGreaterThan(0);
  expect(seen).toEqual(["unreachable", "reachable"]);
  expect(rt.alive).toBe(true);
  expect(await rt.call("echo", { back: true })).toEqual({ back: true });
  for (let i = 0; i < 50 && (await rt.heartbeat()).running.length > 0; i++) await sleep(50);
  expect((await rt.heartbeat()).running).toEqual([]);
}

describe.each(transports)("a runtime started over %s", (transport) => {
  it("recovers after a stall: unreachable while SIGSTOPped, serving again after SIGCONT", async () => {
    const rt = await Runtime.start({ transport, heartbeatIntervalMs: 200, heartbeatMisses: 3 });
    try {
      await expectStallAndRecovery(rt, rt.pid);
    } finally {
      process.kill(rt.pid, "SIGCONT");
      await rt.close();
    }
  });

  // (pythonia's Python process is shared by every pythonia runtime of this Node process:
  // close() stops only this runtime's server in it, and cannot kill it.)
  it.runIf(transport === "zeromq")("closes a stalled runtime at once (SIGKILL: a stopped process does not take SIGTERM)", async () => {
    const rt = await Runtime.start({ transport, heartbeatIntervalMs: 200, heartbeatMisses: 2 });
    const pid = rt.pid;
    const unreachable = new Promise<void>((res) => rt.on("unreachable", () => res()));
    process.kill(pid, "SIGSTOP");
    try {
      await unreachable;
      const t0 = Date.now();
      await rt.close();
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      if (processAlive(pid)) process.kill(pid, "SIGCONT");
    }
    expect(await waitGone(pid, 3000)).toBeGreaterThanOrEqual(0);
  });
});

// Runtime.connect has no child process to watch: liveness comes from heartbeats.
describe("a runtime attached with connect", () => {
  const INTERVAL = 200;
  const MISSES = 3;

  it("rejects pending and later calls with runtime_unreachable once the runtime is SIGKILLed, and still closes", async () => {
    const manual = await spawnManual();
    try {
      const rt = await Runtime.connect({ connectionFile: manual.connectionFile, key: manual.key.toString("hex"), heartbeatIntervalMs: INTERVAL, heartbeatMisses: MISSES });
      // Busy for longer than INTERVAL x MISSES, yet answering heartbeats: not unreachable.
      await expect(rt.call("sleep", { seconds: (3 * INTERVAL * MISSES) / 1000 })).resolves.toBeDefined();
      const pending = [rt.call("sleep", { seconds: 30 }), rt.call("sleep", { seconds: 30 })];
      await sleep(100);
      const t0 = Date.now();
      manual.kill();
      const results = await Promise.allSettled(pending);
      const took = Date.now() - t0;
      // At most MISSES + 1 heartbeat periods (the first miss may start up to one period late), plus a margin.
      expect(took).toBeLessThan(INTERVAL * (MISSES + 1) + 1000);
      for (const r of results) {
        expect(r.status).toBe("rejected");
        const err = (r as PromiseRejectedResult).reason as RuntimeUnreachableError;
        expect(err).toBeInstanceOf(RuntimeUnreachableError);
        expect(err.code).toBe("runtime_unreachable");
        expect(err.context.endpoints).toEqual(rt.endpoints);
        expect(err.endpoints).toEqual(rt.endpoints);
      }
      await expect(rt.call("echo", {})).rejects.toMatchObject({ code: "runtime_unreachable" });
      expect(rt.alive).toBe(false);
      await rt.close();
      await expect(rt.call("echo", {})).rejects.toMatchObject({ code: "closed" });
    } finally {
      manual.kill();
      rmSync(manual.dir, { recursive: true, force: true });
    }
  });

  it("recovers after a stall: unreachable while SIGSTOPped, serving again after SIGCONT", async () => {
    const manual = await spawnManual();
    try {
      const rt = await Runtime.connect({ connectionFile: manual.connectionFile, key: manual.key.toString("hex"), heartbeatIntervalMs: INTERVAL, heartbeatMisses: MISSES });
      await expectStallAndRecovery(rt, manual.pid);
      await rt.close();
    } finally {
      process.kill(manual.pid, "SIGCONT");
      manual.kill();
      rmSync(manual.dir, { recursive: true, force: true });
    }
  });

  it("validates the heartbeat options", async () => {
    const key = "00".repeat(32);
    const conn = { request: "ipc:///nonexistent/request", control: "ipc:///nonexistent/control", key };
    await expect(Runtime.connect({ ...conn, heartbeatMisses: 0 })).rejects.toMatchObject({ code: "invalid_config", field: "options.heartbeatMisses" });
    await expect(Runtime.connect({ ...conn, heartbeatIntervalMs: -1 })).rejects.toMatchObject({ code: "invalid_config", field: "options.heartbeatIntervalMs" });
    await expect(Runtime.connect({ ...conn, heartbeatIntervalMs: 1.5 })).rejects.toMatchObject({ field: "options.heartbeatIntervalMs" });
  });
});
