#!/usr/bin/env node
// Entry of the `nearpos` CLI (`npm run bench` runs `tsx ts/src/cli/bin.ts bench`).
// The only place that sets the process's exit status.
import { run } from "./index.ts";

// A closed pipe (`nearpos bench --list | head`) is not an error worth a stack trace.
for (const s of [process.stdout, process.stderr]) {
  s.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw e;
  });
}

process.exitCode = await run(process.argv.slice(2));
