// Where a small call's time goes: CPU per call of every thread of both processes (Linux
// /proc/PID/task), next to the same for the floor (zeromq.js against raw_echo.py), in one
// run. On a machine with few cores a round trip's wall time is close to the sum of these.
// Usage: npx tsx benchmarks/perf/bridge/threads.ts [calls]
import { readFileSync, readdirSync } from "node:fs";
import { Runtime } from "../../../ts/src/index.ts";
import { openFloor } from "./floor.ts";

const n = Number(process.argv[2] ?? 5000);
if (!Number.isSafeInteger(n) || n < 1) throw new Error(`calls: expected a positive integer, got ${process.argv[2]}`);
const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/** CPU microseconds per thread of `pid`, keyed by a readable thread label. */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended
    }
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const f = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    // (an OS thread name is cut at 15 characters: "nearpos-worker-" stands for them all)
    const label = Number(tid) === pid ? `${comm} (main)` : comm.endsWith("-") ? `${comm}*` : comm;
    out.set(`${label}#${tid}`, (Number(f[11]) + Number(f[12])) * TICK_US);
  }
  return out;
}

/** Per-call CPU by thread label (threads of the same name summed), over `once` run n times. */
async function measure(pids: Record<string, number>, once: () => Promise<unknown>): Promise<{ wall: number; cpu: Record<string, number> }> {
  for (let i = 0; i < Math.min(500, n); i++) await once();
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, threadCpu(pid)]));
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await once();
  const wall = ((performance.now() - t0) * 1000) / n;
  const cpu: Record<string, number> = {};
  for (const [side, pid] of Object.entries(pids)) {
    for (const [key, after] of threadCpu(pid)) {
      const used = (after - (before[side]?.get(key) ?? 0)) / n;
      const name = `${side}: ${key.split("#")[0]}`;
      cpu[name] = (cpu[name] ?? 0) + used;
    }
  }
  return { wall, cpu };
}

const results: [string, { wall: number; cpu: Record<string, number> }][] = [];
{
  const floor = await openFloor();
  results.push(["floor", await measure({ node: process.pid, python: floor.pid }, floor.once)]);
  floor.close();
}
{
  await using rt = await Runtime.start({ transport: "zeromq" });
  const pids = { node: process.pid, python: rt.pid };
  results.push(["echo", await measure(pids, () => rt.call("echo", { i: 1 }))]);
  results.push(["sleep(0)", await measure(pids, () => rt.call("sleep", { seconds: 0 }))]);
  results.push(["heartbeat", await measure(pids, () => rt.heartbeat())]);
}

const rows = [...new Set(results.flatMap(([, r]) => Object.keys(r.cpu)))]
  .filter((k) => results.some(([, r]) => (r.cpu[k] ?? 0) >= 1))
  .sort();
const width = Math.max(...rows.map((r) => r.length), 24);
console.log(`${"us per call".padEnd(width)}${results.map(([m]) => m.padStart(11)).join("")}`);
console.log(`${"wall (p50 is lower)".padEnd(width)}${results.map(([, r]) => r.wall.toFixed(0).padStart(11)).join("")}`);
for (const row of rows) console.log(`${row.padEnd(width)}${results.map(([, r]) => (r.cpu[row] ?? 0).toFixed(0).padStart(11)).join("")}`);
const total = (r: { cpu: Record<string, number> }): number => Object.values(r.cpu).reduce((a, b) => a + b, 0);
console.log(`${"cpu, all threads".padEnd(width)}${results.map(([, r]) => total(r).toFixed(0).padStart(11)).join("")}`);
