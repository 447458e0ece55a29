#!/usr/bin/env node
// Builds the published package: tsc -p tsconfig.build.json into dist/ (JavaScript,
// declarations, source maps). Run by `npm run build`, and by npm before packing (prepack)
// and on install from git (prepare); skipped when dist/ is newer than every input, so the
// two hooks of one `npm pack` build once. `--force` always builds.
// The build goes to a temporary folder that then replaces dist/: no stale files are left,
// and an interrupted build leaves the previous dist/ whole.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { root } from "./python.mjs";

const dist = join(root, "dist");
const stamp = join(dist, ".built");
const inputs = [join(root, "ts", "src"), join(root, "ts", "setup", "python.mjs"), join(root, "tsconfig.json"), join(root, "tsconfig.build.json"), join(root, "package.json")];

/** Newest modification time under `path`; tests and their fixtures are not built. */
function newest(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return /\.test\.ts$/.test(path) ? 0 : st.mtimeMs;
  if (path.endsWith("fixtures")) return 0;
  let m = 0;
  for (const name of readdirSync(path)) m = Math.max(m, newest(join(path, name)));
  return m;
}

if (!process.argv.includes("--force") && existsSync(stamp) && statSync(stamp).mtimeMs >= Math.max(...inputs.map(newest))) {
  process.stderr.write("[nearpos build] dist/ is up to date\n");
  process.exit(0);
}
let tsc;
try {
  tsc = join(createRequire(import.meta.url).resolve("typescript/package.json"), "..", "bin", "tsc");
} catch {
  process.stderr.write("[nearpos build] failed: typescript is not installed (run `npm install` in the repository first)\n");
  process.exit(1);
}
const tmp = join(root, `dist.${process.pid}.tmp`);
rmSync(tmp, { recursive: true, force: true });
const t0 = Date.now();
const r = spawnSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", tmp], { cwd: root, stdio: "inherit" });
if (r.status !== 0) {
  rmSync(tmp, { recursive: true, force: true });
  process.stderr.write(`[nearpos build] failed: tsc exited with ${r.status ?? r.signal}\n`);
  process.exit(1);
}
writeFileSync(join(tmp, ".built"), `${new Date().toISOString()}\n`);
rmSync(dist, { recursive: true, force: true });
renameSync(tmp, dist);
process.stderr.write(`[nearpos build] dist/ built in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
