import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { RuntimeExitedError, StartError, TimeoutError } from "../errors.ts";
import type { ResolvedRuntimeOptions } from "./options.ts";

/** Lines of stderr kept for error messages. */
export const STDERR_TAIL_LINES = 50;

/** The repository root (this file is ts/src/runtime/process.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

/** The Python interpreter used when none is given. */
export function defaultPython(): string {
  const fromEnv = process.env.NEARPOS_PYTHON;
  if (fromEnv) return fromEnv;
  const venv = join(REPO_ROOT, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
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
        env: { ...process.env, PYTHONUNBUFFERED: "1", ...opts.env },
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
      await sleep(delay);
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
