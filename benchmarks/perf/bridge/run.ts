// Bridge benchmark: round-trip latency of small echo calls and tensor throughput both ways.
// Usage: npx tsx benchmarks/perf/bridge/run.ts [--quick] [--only zeromq|pythonia] [--out results.json]
// The floor (zeromq.js against raw_echo.py) is timed in blocks interleaved with each
// column's small calls, and the latency targets are ratios to it.
import { writeFileSync } from "node:fs";
import { arch, cpus, platform } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Runtime, Tensor } from "../../../ts/src/index.ts";
import { openFloor } from "./floor.ts";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const outIdx = args.indexOf("--out");
const outPath = outIdx >= 0 ? (args[outIdx + 1] as string) : join(here, "results.json");

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
// Targets, against the floor measured in the same run (timings on a shared machine move
// by tens of percent from run to run; their ratio to the floor moves far less).
const TARGET_ECHO_X_FLOOR = 1.5; // a small call (inline), p50
const TARGET_POOLED_X_FLOOR = 2; // a call through a worker thread, p50
const TARGET_GIBPS_64MIB = 1; // 64 MiB, both ways

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

interface LatencyResult {
  n: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
}

interface ThroughputResult {
  direction: "ts_to_py" | "py_to_ts";
  mib: number;
  reps: number;
  median_ms: number;
  gib_per_s: number;
}

function summary(us: number[]): LatencyResult {
  const sorted = [...us].sort((a, b) => a - b);
  return { n: us.length, p50_us: percentile(sorted, 50), p99_us: percentile(sorted, 99), mean_us: us.reduce((a, b) => a + b, 0) / us.length };
}

/**
 * Round trips of each measure, `n` apiece, interleaved in blocks of `block` (measure A's
 * block, then B's, ... then A's again): on a shared machine conditions drift within a run,
 * and interleaving lets every measure, the floor included, see the same drift.
 */
async function latencies<K extends string>(n: number, measures: Record<K, () => Promise<unknown>>, block = 250): Promise<Record<K, LatencyResult>> {
  const names = Object.keys(measures) as K[];
  for (const name of names) for (let i = 0; i < Math.min(200, n); i++) await measures[name]();
  const us = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let done = 0; done < n; done += block) {
    for (const name of names) {
      const once = measures[name];
      for (let i = 0; i < Math.min(block, n - done); i++) {
        const t0 = process.hrtime.bigint();
        await once();
        us[name].push(Number(process.hrtime.bigint() - t0) / 1000);
      }
    }
  }
  return Object.fromEntries(names.map((k) => [k, summary(us[k])])) as Record<K, LatencyResult>;
}

// At least one timed repetition; no new one starts once `budgetMs` is spent (pythonia moves
// 64 MiB in seconds, not milliseconds): `reps` in the result is what was actually run.
async function throughput(rt: Runtime, direction: ThroughputResult["direction"], mib: number, reps: number, budgetMs = Infinity): Promise<ThroughputResult> {
  const nbytes = mib * MiB;
  // Only the TS -> Python direction needs a tensor here (an idle 64 MiB one would only
  // add to the garbage collector's work while the other direction is timed).
  const tensor = direction === "ts_to_py" ? Tensor.zeros([nbytes / 4], "float32") : undefined;
  const once = async (): Promise<void> => {
    if (direction === "ts_to_py") {
      const r = await rt.call<{ nbytes: number }>("bytes_in", { tensor: tensor as Tensor });
      if (r.nbytes !== nbytes) throw new Error(`bytes_in saw ${r.nbytes} bytes, sent ${nbytes}`);
    } else {
      const t = await rt.call<Tensor>("bytes_out", { nbytes, dtype: "float32" });
      if (t.nbytes !== nbytes) throw new Error(`bytes_out sent ${t.nbytes} bytes, asked ${nbytes}`);
    }
  };
  await once();
  const ms: number[] = [];
  const start = Date.now();
  for (let i = 0; i < reps && (i === 0 || Date.now() - start < budgetMs); i++) {
    const t0 = process.hrtime.bigint();
    await once();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  const median = percentile(ms, 50);
  return { direction, mib, reps: ms.length, median_ms: median, gib_per_s: nbytes / GiB / (median / 1000) };
}

// pythonia (the fallback) moves base64 text through a pipe: far slower, so it gets fewer
// repetitions and a time budget per measure; the counts run are in results.json.
const onlyIdx = args.indexOf("--only");
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : undefined;
if (only !== undefined && only !== "zeromq" && only !== "pythonia") throw new Error(`--only: expected zeromq or pythonia, got ${only}`);
const transports = (["zeromq", "pythonia"] as const).filter((t) => only === undefined || t === only);
const plan = {
  zeromq: { n: quick ? 500 : 5000, reps: (mib: number) => (quick ? 3 : mib === 4 ? 30 : 10), budgetMs: Infinity },
  pythonia: { n: quick ? 200 : 2000, reps: (mib: number) => (quick ? 2 : mib === 4 ? 10 : 3), budgetMs: quick ? 5_000 : 15_000 },
};
const results: Record<
  string,
  { floor: LatencyResult; latency: LatencyResult; pooled: LatencyResult; heartbeat: LatencyResult; throughput: ThroughputResult[] }
> = {};
const rawEcho = await openFloor();
try {
  for (const transport of transports) {
    const p = plan[transport];
    await using rt = await Runtime.start({ transport });
    let i = 0;
    const lat = await latencies(p.n, {
      floor: rawEcho.once,
      // echo runs inline on the runtime's IO thread; sleep (seconds 0) takes the path of an
      // ordinary method: a hop to a worker thread and back.
      echo: () => rt.call("echo", { i: i++ }),
      pooled: () => rt.call("sleep", { seconds: 0 }),
      // The control channel's round trip: no worker thread involved.
      heartbeat: () => rt.heartbeat(),
    });
    const thr: ThroughputResult[] = [];
    for (const mib of [4, 64]) {
      thr.push(await throughput(rt, "ts_to_py", mib, p.reps(mib), p.budgetMs));
      thr.push(await throughput(rt, "py_to_ts", mib, p.reps(mib), p.budgetMs));
    }
    results[transport] = { floor: lat.floor, latency: lat.echo, pooled: lat.pooled, heartbeat: lat.heartbeat, throughput: thr };
  }
} finally {
  rawEcho.close();
}

const report = {
  date: new Date().toISOString(),
  machine: { platform: platform(), arch: arch(), cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
  quick,
  targets: {
    echo_p50_x_floor: TARGET_ECHO_X_FLOOR,
    pooled_p50_x_floor: TARGET_POOLED_X_FLOOR,
    gib_per_s_at_64mib: TARGET_GIBPS_64MIB,
  },
  // p50 over the p50 of the floor measured interleaved with it, per transport
  x_floor: Object.fromEntries(
    Object.entries(results).map(([t, r]) => [
      t,
      { echo: r.latency.p50_us / r.floor.p50_us, pooled: r.pooled.p50_us / r.floor.p50_us, heartbeat: r.heartbeat.p50_us / r.floor.p50_us },
    ]),
  ),
  // the floor timed with the zeromq column (kept under this name; each column has its own)
  raw_zeromq_floor: results.zeromq?.floor,
  results,
};
writeFileSync(outPath, `${JSON.stringify(report, null, 2)}\n`);

const cols = ["measure", ...transports];
const times = (t: string, us: number): string => ` (${(us / results[t]!.floor.p50_us).toFixed(2)}x)`;
const rows: string[][] = [
  ["floor p50 (us)", ...transports.map((t) => results[t]!.floor.p50_us.toFixed(0))],
  ["floor p99 (us)", ...transports.map((t) => results[t]!.floor.p99_us.toFixed(0))],
  ["echo p50 (us)", ...transports.map((t) => `${results[t]!.latency.p50_us.toFixed(0)}${times(t, results[t]!.latency.p50_us)}`)],
  ["echo p99 (us)", ...transports.map((t) => results[t]!.latency.p99_us.toFixed(0))],
  ["sleep(0) p50 (us)", ...transports.map((t) => `${results[t]!.pooled.p50_us.toFixed(0)}${times(t, results[t]!.pooled.p50_us)}`)],
  ["sleep(0) p99 (us)", ...transports.map((t) => results[t]!.pooled.p99_us.toFixed(0))],
  ["heartbeat p50 (us)", ...transports.map((t) => `${results[t]!.heartbeat.p50_us.toFixed(0)}${times(t, results[t]!.heartbeat.p50_us)}`)],
  ["heartbeat p99 (us)", ...transports.map((t) => results[t]!.heartbeat.p99_us.toFixed(0))],
];
for (const [i, r] of results[transports[0] as string]!.throughput.entries()) {
  rows.push([
    `${r.mib} MiB ${r.direction === "ts_to_py" ? "TS->Py" : "Py->TS"} (GiB/s)`,
    ...transports.map((t) => `${results[t]!.throughput[i]!.gib_per_s.toFixed(3)} (x${results[t]!.throughput[i]!.reps})`),
  ]);
}
const widths = cols.map((_, c) => Math.max(...[cols, ...rows].map((r) => (r[c] ?? "").length)));
const line = (r: string[]) => r.map((x, c) => x.padEnd(widths[c] as number)).join("  ");
console.log(line(cols));
for (const r of rows) console.log(line(r));
console.log("floor: zeromq.js <-> bare pyzmq echo, no protocol, timed in blocks interleaved with each column's calls; (Nx) = p50 / floor p50");
const z = results.zeromq;
if (z) {
  const worst64 = Math.min(...z.throughput.filter((r) => r.mib === 64).map((r) => r.gib_per_s));
  const met = (ok: boolean): string => (ok ? "met" : "MISSED");
  console.log(
    `targets (zeromq): echo p50 <= ${TARGET_ECHO_X_FLOOR}x floor: ${met(z.latency.p50_us <= TARGET_ECHO_X_FLOOR * z.floor.p50_us)}; ` +
      `sleep(0) p50 <= ${TARGET_POOLED_X_FLOOR}x floor: ${met(z.pooled.p50_us <= TARGET_POOLED_X_FLOOR * z.floor.p50_us)}; ` +
      `>= ${TARGET_GIBPS_64MIB} GiB/s at 64 MiB both ways: ${met(worst64 >= TARGET_GIBPS_64MIB)}`,
  );
}
console.log(`written to ${outPath}`);
