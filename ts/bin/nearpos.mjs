#!/usr/bin/env node
// Package bin of `nearpos`: runs the TypeScript CLI through tsx (no build step).
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const tsxCli = join(dirname(require.resolve("tsx/package.json")), "dist", "cli.mjs");
const child = spawn(process.execPath, [tsxCli, join(here, "..", "src", "cli", "bin.ts"), ...process.argv.slice(2)], { stdio: "inherit" });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => {
  // Ended by a signal: exit as a shell reports it, 128 + the signal's number (130 SIGINT, 143 SIGTERM).
  process.exit(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1));
});
