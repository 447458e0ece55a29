// Which Python runs the runtime, the Python tests and the benchmarks: $NEARPOS_PYTHON when
// set (an interpreter of your own, e.g. one with a CUDA torch), else the project's .venv.
// The TypeScript side makes the same choice (ts/src/runtime/process.ts, defaultPython).
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export function venvDir() {
  return process.env.NEARPOS_VENV ? resolve(process.env.NEARPOS_VENV) : join(root, ".venv");
}

export function venvPython() {
  return join(venvDir(), process.platform === "win32" ? "Scripts/python.exe" : "bin/python");
}

export function runtimePython() {
  return process.env.NEARPOS_PYTHON || venvPython();
}
