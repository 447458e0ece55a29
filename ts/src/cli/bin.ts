#!/usr/bin/env node
// Entry of the `nearpos` CLI (`npm run bench` runs `tsx ts/src/cli/bin.ts bench`).
// The only place that sets the process's exit status.
import { run } from "./index.ts";

process.exitCode = await run(process.argv.slice(2));
