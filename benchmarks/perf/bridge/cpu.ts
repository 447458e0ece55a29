// CPU time per small call, in the Node process and in the runtime process (Linux /proc),
// next to the wall time: tells whether latency is work done or time spent waiting.
// Usage: npx tsx benchmarks/perf/bridge/cpu.ts [calls]
import { readFileSync } from "node:fs";
import { Runtime } from "../../../ts/src/index.ts";

const n = Number(process.argv[2] ?? 5000);
if (!Number.isSafeInteger(n) || n < 1) throw new Error(`calls: expected a positive integer, got ${process.argv[2]}`);
await using rt = await Runtime.start({ transport: "zeromq" });
const ticksToUs = 1e6 / 100; // USER_HZ is 100 on Linux
const runtimeCpuUs = (): number => {
  const fields = (readFileSync(`/proc/${rt.pid}/stat`, "utf8").split(") ")[1] as string).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * ticksToUs; // utime + stime, all threads
};
const measures: [string, () => Promise<unknown>][] = [
  ["echo (inline)", () => rt.call("echo", { i: 1 })],
  ["sleep(0) (worker)", () => rt.call("sleep", { seconds: 0 })],
  ["heartbeat (control)", () => rt.heartbeat()],
];
console.log("measure              wall us/call  node cpu us/call  runtime cpu us/call");
for (const [name, once] of measures) {
  for (let i = 0; i < Math.min(500, n); i++) await once();
  const node0 = process.cpuUsage();
  const py0 = runtimeCpuUs();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await once();
  const wall = ((performance.now() - t0) * 1000) / n;
  const node = process.cpuUsage(node0);
  const py = (runtimeCpuUs() - py0) / n;
  console.log(`${name.padEnd(21)}${wall.toFixed(0).padStart(12)}  ${((node.user + node.system) / n).toFixed(0).padStart(16)}  ${py.toFixed(0).padStart(19)}`);
}
