#!/usr/bin/env node
// Runs the static checks (tsc, ruff), then both test runners (vitest, then pytest), and
// fails if any fails. pytest runs last so the output ends with its summary line.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { root, runtimePython } from "./python.mjs";

const python = runtimePython();
const extra = process.argv.slice(2);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  return r.status ?? 1;
}

const tsc = run(join(root, "node_modules", ".bin", "tsc"), ["--noEmit", "-p", "tsconfig.json"]);
const ruff = run(python, ["-m", "ruff", "check", "--quiet", "py-bridge", "plugins", "benchmarks"]);
const vitest = run(join(root, "node_modules", ".bin", "vitest"), ["run", ...extra]);
const pytest = run(python, ["-m", "pytest", "-q"]);
const failed = [tsc !== 0 && `tsc (exit ${tsc})`, ruff !== 0 && `ruff (exit ${ruff})`, vitest !== 0 && `vitest (exit ${vitest})`, pytest !== 0 && `pytest (exit ${pytest})`].filter(Boolean);
if (failed.length > 0) {
  process.stderr.write(`\nnearpos tests failed: ${failed.join(", ")}\n`);
  process.exit(1);
}
