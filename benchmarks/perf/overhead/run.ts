/**
 * Overhead of driving training from TypeScript: the same training (model, data, loss,
 * sampler, steps) run through the runtime from TS and called directly in Python, in one run.
 * Prints samples/s for both and the ratio; writes results.json (see README.md).
 *
 * Usage: npx tsx benchmarks/perf/overhead/run.ts [--steps N] [--repeats N] [--threads N] [--log-every N] [--out PATH]
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdirSync, writeFileSync, renameSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { Runtime } from "../../../ts/src/runtime/runtime.ts";
import type { TrainConfig, TrainResult } from "../../../ts/src/training/index.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "../../..");

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? (process.argv[i + 1] as string) : fallback;
}

const steps = Number(arg("steps", "300"));
const repeats = Number(arg("repeats", "3"));
const out = resolve(arg("out", join(HERE, "results.json")));

const config: TrainConfig = {
  data: { kind: "mnist", per_digit: 300 },
  model: { kind: "mlp", hidden: [256], embedding_dim: 64 },
  loss: { name: "triplet", config: { margin: 0.2 } },
  sampler: { name: "nearest-positive", config: {} },
  batch: { classes: 5, per_class: 8 },
  optimizer: { kind: "adam", lr: 0.001 },
  steps,
  eval_every: 0,
  log_every: Number(arg("log-every", "1")),
  eval: { ks: [1], nmi: false },
  device: "cpu",
  // Same thread count on both sides: on a loaded 2-core machine torch's default pool
  // oversubscribes and dominates the timing.
  threads: Number(arg("threads", "1")),
  seed: 0,
};
const batch = 5 * 8;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** The direct-Python side: a child process that trains once per line written to it. */
async function startDirect(python: string): Promise<{ run: () => Promise<DirectRun>; close: () => void }> {
  const child = spawn(python, [join(HERE, "direct.py"), JSON.stringify(config)], { cwd: REPO, stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const { value, done } = await lines.next();
    if (done) throw new Error("direct.py ended early");
    return value as string;
  };
  if ((await next()) !== "ready") throw new Error("direct.py did not start");
  return {
    run: async () => {
      child.stdin.write("run\n");
      return JSON.parse(await next()) as DirectRun;
    },
    close: () => child.stdin.end(),
  };
}

interface DirectRun {
  wall_s: number;
  metrics: unknown;
  losses: number[];
}

async function main(): Promise<void> {
  const python = process.env.NEARPOS_PYTHON ?? join(REPO, ".venv/bin/python");
  const direct = await startDirect(python);
  const rt = await Runtime.start();
  const directWalls: number[] = [];
  const tsWalls: number[] = [];
  let events = 0;
  let tsResult: TrainResult | undefined;
  let directLast: DirectRun | undefined;
  try {
    await rt.train({ ...config, steps: 5 }).result; // warm-up: one-time imports
    // Interleaved, so drifts of a shared machine hit both sides alike.
    for (let r = 0; r < repeats; r++) {
      directLast = await direct.run();
      directWalls.push(directLast.wall_s);
      const t0 = performance.now();
      const run = rt.train(config);
      for await (const _ of run.events) events++;
      tsResult = await run.result;
      tsWalls.push((performance.now() - t0) / 1000);
      await rt.call("release", { id: tsResult.model });
    }
  } finally {
    direct.close();
    await rt.close();
  }
  if (!tsResult || !directLast) throw new Error("no run completed");
  const directResult = { wall_s: directWalls, metrics: directLast.metrics, losses: directLast.losses };
  const samples = steps * batch;
  const directSps = samples / median(directResult.wall_s);
  const tsSps = samples / median(tsWalls);
  const sameLosses = JSON.stringify(tsResult.losses) === JSON.stringify(directResult.losses);
  const sameMetrics = JSON.stringify(tsResult.metrics) === JSON.stringify(directResult.metrics);
  const results = {
    benchmark: "perf/overhead",
    date: new Date().toISOString(),
    config,
    repeats,
    samples_per_run: samples,
    direct: { wall_s: directResult.wall_s, samples_per_s: directSps },
    ts: { wall_s: tsWalls, samples_per_s: tsSps, events_per_run: events / repeats },
    ratio: tsSps / directSps,
    target_ratio: 0.97,
    meets_target: tsSps / directSps >= 0.97,
    same_losses: sameLosses,
    same_metrics: sameMetrics,
    note: "samples/s = steps x batch / median end-to-end wall time of one training call (data loading and the final evaluation included in both)",
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(`${out}.tmp`, JSON.stringify(results, null, 2) + "\n");
  renameSync(`${out}.tmp`, out);
  console.log(`direct Python : ${directSps.toFixed(0)} samples/s (wall ${directResult.wall_s.map((w) => w.toFixed(2)).join(", ")} s)`);
  console.log(`TS via runtime: ${tsSps.toFixed(0)} samples/s (wall ${tsWalls.map((w) => w.toFixed(2)).join(", ")} s, ${events / repeats} events/run)`);
  console.log(`ratio TS/direct: ${(tsSps / directSps).toFixed(3)} (target >= 0.97); same losses: ${sameLosses}, same metrics: ${sameMetrics}`);
  console.log(`wrote ${out}`);
}

await main();
