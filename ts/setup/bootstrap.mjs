#!/usr/bin/env node
// Idempotent set-up for a fresh clone: npm dependencies, then a Python virtual
// environment (.venv) holding torch, requirements.txt and the local packages.
// Plain Node with no dependencies, because it runs before `npm install` has.
// A second run compares stamps and returns in well under a second.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PIP_INSTALL, root, torchSpec, venvDir, venvPython } from "./python.mjs";

const quiet = process.argv.includes("--quiet");

function log(msg) {
  if (!quiet) process.stderr.write(`[nearpos setup] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  log(`$ ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"], ...opts });
  if (r.error) throw new Error(`could not run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
}

function hashFiles(paths, extra = "") {
  const h = createHash("sha256");
  for (const p of paths) {
    h.update(p);
    h.update(existsSync(join(root, p)) ? readFileSync(join(root, p)) : "<missing>");
  }
  h.update(extra);
  return h.digest("hex");
}

function stampMatches(stampPath, digest) {
  return existsSync(stampPath) && readFileSync(stampPath, "utf8").trim() === digest;
}

function writeStamp(stampPath, digest) {
  const tmp = `${stampPath}.tmp`;
  writeFileSync(tmp, `${digest}\n`);
  renameSync(tmp, stampPath);
}

function setupNode() {
  const stamp = join(root, "node_modules", ".nearpos-setup");
  const digest = hashFiles(["package.json", "package-lock.json"], process.version);
  if (stampMatches(stamp, digest)) return;
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  // `npm install` rather than `npm ci`: it honours the lock file but tolerates
  // platform-specific optional dependencies that a lock made elsewhere lacks.
  run(npm, ["install", "--no-audit", "--no-fund"]);
  writeStamp(stamp, digest);
}

const PIP = PIP_INSTALL;
const PY_INPUTS = ["requirements.txt", "py-bridge/pyproject.toml", "plugins/nearest-positive/pyproject.toml"];

/** The project's own virtual environment (the default). */
function setupVenv() {
  const venv = venvDir();
  const spec = torchSpec();
  const stamp = join(venv, ".nearpos-setup");
  const digest = hashFiles(PY_INPUTS, `python3\n${spec}`);
  if (stampMatches(stamp, digest)) return;
  const python = venvPython();
  if (!existsSync(python)) {
    rmSync(venv, { recursive: true, force: true });
    run("python3", ["-m", "venv", venv]);
  }
  // Bounded retries: an unreachable index fails in seconds instead of stalling.
  run(python, [...PIP, spec]);
  run(python, [...PIP, "-r", "requirements.txt"]);
  writeStamp(stamp, digest);
}

/** $NEARPOS_PYTHON: an interpreter of the user's. Its own torch (a CUDA build, say) is kept;
 * torch is installed only where it is missing. */
function setupUserPython(python) {
  const dir = join(root, ".nearpos");
  mkdirSync(dir, { recursive: true });
  const stamp = join(dir, `setup-${createHash("sha256").update(python).digest("hex").slice(0, 16)}`);
  const digest = hashFiles(PY_INPUTS, python);
  if (stampMatches(stamp, digest)) return;
  const hasTorch = spawnSync(python, ["-c", "import torch"], { stdio: "ignore" }).status === 0;
  if (!hasTorch) run(python, [...PIP, torchSpec()]);
  run(python, [...PIP, "-r", "requirements.txt"]);
  writeStamp(stamp, digest);
}

function setupPython() {
  if (process.env.NEARPOS_PYTHON) setupUserPython(process.env.NEARPOS_PYTHON);
  else setupVenv();
}

try {
  setupNode();
  setupPython();
  log("ready");
} catch (err) {
  process.stderr.write(`[nearpos setup] failed: ${err.message}\n`);
  process.exit(1);
}
