import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Runtime } from "./runtime.ts";
import { CancelledError, PythonError } from "../errors.ts";
import type { TrainConfig, TrainEvent } from "../training/index.ts";

// Two gloo processes on the CPU through the real runtime: one event stream, one result.
function config(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    data: { kind: "synthetic", classes: 4, modes_per_class: 2, dim: 8, per_mode: 20 },
    model: { kind: "mlp", hidden: [32], embedding_dim: 8 },
    loss: { name: "triplet", config: { margin: 0.2 } },
    sampler: { name: "nearest-positive", config: {} },
    batch: { classes: 4, per_class: 4 },
    optimizer: { kind: "adam", lr: 0.01 },
    steps: 4,
    eval: { ks: [1, 2], nmi: false },
    device: "cpu",
    threads: 1,
    seed: 11,
    ...over,
  };
}

/** Live processes of distributed runs on this machine (their launcher and workers). */
function runProcesses(): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      const state = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]?.[0];
      const ours = cmd.includes("nearpos_runtime.train") || cmd.includes("nearpos_runtime.training.distributed.launcher");
      if (ours && state !== "Z") found.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** The process of rank `rank` of a running distributed run (from its environment). */
function workerOfRank(rank: number): number | undefined {
  for (const pid of runProcesses()) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("nearpos_runtime.train")) continue;
      const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      if (env.includes(`RANK=${rank}`) && env.some((e) => e.startsWith("TORCHELASTIC_RUN_ID="))) return pid;
    } catch {
      // the process ended while we looked
    }
  }
  return undefined;
}

describe.runIf(process.platform === "linux")("distributed training from TypeScript", () => {
  let rt: Runtime;
  let dir: string;
  beforeAll(async () => {
    rt = await Runtime.start();
    dir = mkdtempSync(join(tmpdir(), "nearpos-dist-"));
  });
  afterAll(async () => {
    await rt?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs two processes as one run: one event stream, one result, the single-process losses", async () => {
    const run = rt.train(config({ distributed: { nproc_per_node: 2, backend: "gloo" }, checkpoint: { dir, every: 2 } }));
    const events: TrainEvent[] = [];
    for await (const ev of run.events) events.push(ev);
    const result = await run.result;
    expect(result.world_size).toBe(2);
    const steps = events.flatMap((e) => (e.type === "step" ? [e.data] : []));
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(steps.map((s) => s.loss)).toEqual(result.losses);
    expect(events.flatMap((e) => (e.type === "checkpoint" ? [e.data.step] : []))).toEqual([2, 4]);
    expect(events.filter((e) => e.type === "eval")).toHaveLength(1);

    const single = await rt.train(config()).result;
    expect(single.world_size).toBe(1);
    result.losses.forEach((loss, i) => expect(Math.abs(loss - (single.losses[i] ?? Number.NaN))).toBeLessThan(1e-5));
    // The model came back into the runtime: it embeds and evaluates like any other.
    const report = await rt.evaluate({ model: result.model, data: config().data, ks: [1, 2], nmi: false });
    expect(Math.abs((report.metrics.coarse["recall@1"] ?? -1) - (result.metrics.coarse["recall@1"] ?? -2))).toBeLessThan(1e-6);
  });

  it("a worker killed with SIGKILL fails the run with a typed error naming its rank and signal; nothing is left; the runtime serves on", async () => {
    let killed: number | undefined;
    const run = rt.train(config({ steps: 100_000, distributed: { nproc_per_node: 2, backend: "gloo" } }), {
      onEvent: (e) => {
        if (e.type === "step" && killed === undefined) {
          killed = workerOfRank(1);
          if (killed !== undefined) process.kill(killed, "SIGKILL");
        }
      },
    });
    const err = await run.result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(killed).toBeDefined();
    expect(err).toBeInstanceOf(PythonError);
    const py = err as PythonError;
    expect([py.ename, py.remoteCode]).toEqual(["WorkerFailed", "worker_failed"]);
    expect(py.evalue).toMatch(new RegExp(`rank 1 \\(pid ${killed}\\) was killed by signal SIGKILL`));
    expect(runProcesses()).toEqual([]);
    const ok = await rt.train(config({ steps: 1 })).result;
    expect(ok.steps).toBe(1);
  });

  it("cancels every process of a run, then serves the next request", async () => {
    const ac = new AbortController();
    const run = rt.train(config({ steps: 100_000, distributed: { nproc_per_node: 2, backend: "gloo" } }), {
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === "step") ac.abort();
      },
    });
    await expect(run.result).rejects.toBeInstanceOf(CancelledError);
    expect(runProcesses()).toEqual([]);
    const ok = await rt.train(config({ steps: 2 })).result;
    expect(ok.steps).toBe(2);
  });
});
