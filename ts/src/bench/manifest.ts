/**
 * manifest.json: everything needed to recompute a suite run's numbers.
 * @internal
 */
import { execFileSync } from "node:child_process";
import { packageVersion, REPO_ROOT } from "../runtime/process.ts";
import { sha256Of } from "./canonical.ts";
import type { RunSpec, Suite } from "./suite.ts";
import type { HelloReply } from "./types.ts";

/** The manifest written at the start of a suite run. */
export interface Manifest {
  format: "nearpos-bench/1";
  suite: Suite;
  suite_file: string;
  /** sha256 of the canonical JSON of {suite, runs} (the full resolved config). */
  config_sha256: string;
  seeds: number[];
  runs: { id: string; lossId: string; sampler: string; baseline: boolean; seed: number; config_sha256: string; train: Record<string, unknown> }[];
  selection: Record<string, unknown>;
  versions: { nearpos: string; node: string; python: string; torch: string; runtime: string; protocol: string; platform: string };
  plugins: { name: string; version: string }[];
  git: { commit: string | null; dirty: boolean | null };
  device: string;
  devices: HelloReply["devices"];
  command: string[];
  created_at: string;
}

/** Git commit and dirty flag of the working tree (null outside a repository). */
export function gitInfo(cwd = REPO_ROOT): { commit: string | null; dirty: boolean | null } {
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const status = execFileSync("git", ["status", "--porcelain"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return { commit: null, dirty: null };
  }
}

/** The device runs will use, from the configs and the runtime's devices ("auto" resolves to cuda when present). */
export function resolveDevice(runs: readonly RunSpec[], hello: HelloReply): string {
  const wanted = new Set(runs.map((r) => String(r.train.device ?? "auto")));
  const hasCuda = hello.devices.some((d) => d.type === "cuda");
  return [...wanted].map((w) => (w === "auto" ? (hasCuda ? "cuda" : "cpu") : w)).join(",");
}

/** Builds the manifest of a suite run. */
export function buildManifest(args: { suite: Suite; suiteFile: string; runs: readonly RunSpec[]; selection: Record<string, unknown>; hello: HelloReply; command: string[] }): Manifest {
  const runs = args.runs.map((r) => ({ id: r.id, lossId: r.lossId, sampler: r.sampler, baseline: r.baseline, seed: r.seed, config_sha256: sha256Of(r.train), train: r.train }));
  return {
    format: "nearpos-bench/1",
    suite: args.suite,
    suite_file: args.suiteFile,
    config_sha256: sha256Of({ suite: args.suite, runs: runs.map((r) => ({ id: r.id, train: r.train })) }),
    seeds: [...new Set(args.runs.map((r) => r.seed))],
    runs,
    selection: args.selection,
    versions: {
      nearpos: packageVersion(),
      node: process.version,
      python: args.hello.python,
      torch: args.hello.torch,
      runtime: args.hello.runtime_version,
      protocol: args.hello.protocol_version,
      platform: args.hello.platform,
    },
    plugins: args.hello.plugins.map((p) => ({ name: p.name, version: p.version })),
    git: gitInfo(),
    device: resolveDevice(args.runs, args.hello),
    devices: args.hello.devices,
    command: args.command,
    created_at: new Date().toISOString(),
  };
}
