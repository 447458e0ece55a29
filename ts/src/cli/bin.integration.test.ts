// The package bin (ts/bin/nearpos.mjs) as a shell sees it: its exit status after a signal.
import { describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../runtime/process.ts";

const BIN = join(REPO_ROOT, "ts", "bin", "nearpos.mjs");

/** Pids of a process's children (Linux /proc). */
function childrenOf(pid: number): number[] {
  const f = `/proc/${pid}/task/${pid}/children`;
  return existsSync(f) ? readFileSync(f, "utf8").trim().split(/\s+/).filter(Boolean).map(Number) : [];
}

async function waitFor<T>(get: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

function exitOf(p: ChildProcess): Promise<number | null> {
  return new Promise((r) => p.on("exit", (code) => r(code)));
}

// `info` starts a runtime, so the CLI lives long enough to be signalled.
const start = () => spawn(process.execPath, [BIN, "info", "--json"], { stdio: "ignore" });

describe.skipIf(!existsSync("/proc/self/task"))("nearpos bin exit status after a signal", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)("%s to the bin exits %i", async (signal, status) => {
    const bin = start();
    await waitFor(() => (childrenOf(bin.pid!).length > 0 ? true : undefined));
    const exited = exitOf(bin);
    bin.kill(signal);
    expect(await exited).toBe(status);
  });

  it("a CLI process killed by a signal exits 128 + its number (SIGKILL: 137)", async () => {
    const bin = start();
    const cli = await waitFor(() => childrenOf(bin.pid!)[0]);
    const below = await waitFor(() => (childrenOf(cli).length > 0 ? childrenOf(cli) : undefined));
    const exited = exitOf(bin);
    process.kill(cli, "SIGKILL");
    expect(await exited).toBe(137);
    // The killed process's own children are left behind: end them.
    for (const pid of below) {
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
  });
});
