// Which Python runs the runtime, the Python tests and the benchmarks: $NEARPOS_PYTHON when
// set (an interpreter of your own, e.g. one with a CUDA torch), else the project's .venv.
// The TypeScript side makes the same choice (ts/src/runtime/process.ts, findPython).
//
// Also the choices shared by the repository's set-up (bootstrap.mjs) and `nearpos setup`
// in a user's project (ts/src/cli/commands/setup.ts): which torch to install, and how pip
// is run. Plain Node with no dependencies: bootstrap.mjs runs before `npm install`.
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (the package root, once built: dist/setup/python.mjs). */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The Python of a virtual environment in `dir`. */
export function pythonIn(dir) {
  return join(dir, process.platform === "win32" ? "Scripts/python.exe" : "bin/python");
}

export function venvDir() {
  return process.env.NEARPOS_VENV ? resolve(process.env.NEARPOS_VENV) : join(root, ".venv");
}

export function venvPython() {
  return pythonIn(venvDir());
}

export function runtimePython() {
  return process.env.NEARPOS_PYTHON || venvPython();
}

/** True where CUDA can be used (`nvidia-smi -L` works), unless NEARPOS_DEVICE=cpu. */
export function hasCuda() {
  if (process.env.NEARPOS_DEVICE === "cpu") return false;
  const r = spawnSync("nvidia-smi", ["-L"], { stdio: "ignore" });
  return r.status === 0;
}

/** The CPU build of torch installed where no CUDA is present. */
export const CPU_TORCH = "torch==2.13.0+cpu";

/** The torch requirement: $NEARPOS_TORCH_SPEC, else the CPU build where no CUDA is present,
 * so pip never picks a CUDA wheel whose dependencies this machine cannot fetch. */
export function torchSpec() {
  if (process.env.NEARPOS_TORCH_SPEC) return process.env.NEARPOS_TORCH_SPEC;
  return hasCuda() ? "torch" : CPU_TORCH;
}

/** `python` + these + requirements: pip with bounded retries, so an unreachable index fails
 * in seconds instead of stalling. */
export const PIP_INSTALL = [
  "-m", "pip", "install", "--retries", "0", "--timeout", "30",
  "--disable-pip-version-check", "--no-input", "-q",
];
