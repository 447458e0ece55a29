#!/usr/bin/env node
// Package bin of `nearpos`. Installed from the package: runs the built CLI (dist/) in this
// process, with plain Node. Inside a clone of the repository (ts/src is there, and tsx, a
// devDependency): runs the TypeScript CLI through tsx, so no build step is needed.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, "..", "src", "cli", "bin.ts");
const built = join(here, "..", "..", "dist", "src", "cli", "bin.js");

function tsxCli() {
  if (!existsSync(source)) return undefined;
  try {
    return join(dirname(createRequire(import.meta.url).resolve("tsx/package.json")), "dist", "cli.mjs");
  } catch {
    return undefined;
  }
}

const tsx = tsxCli();
if (tsx) {
  // Handlers first: a signal that arrives while the child is being spawned is passed on too
  // (handlers run from the event loop, once `child` is set).
  let child;
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
  child = spawn(process.execPath, [tsx, source, ...process.argv.slice(2)], { stdio: "inherit" });
  child.on("exit", (code, signal) => {
    // Ended by a signal: exit as a shell reports it, 128 + the signal's number (130 SIGINT, 143 SIGTERM).
    process.exit(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1));
  });
} else if (existsSync(built)) {
  await import(pathToFileURL(built).href);
} else {
  process.stderr.write(`nearpos: the CLI is not built (${built} is missing): run \`npm run build\` in the package\n`);
  process.exit(1);
}
