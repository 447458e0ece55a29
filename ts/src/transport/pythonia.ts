import type { ChildProcess } from "node:child_process";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { RuntimeExitedError, StartError } from "../errors.ts";
import { AsyncQueue } from "./queue.ts";
import type { Channel, IncomingFrames, OutgoingFrame, Transport } from "./transport.ts";

/** The module pythonia loads: py-bridge/nearpos_runtime/transports/pythonia_entry.py. */
export const PYTHONIA_ENTRY = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "..",
  "py-bridge",
  "nearpos_runtime",
  "transports",
  "pythonia_entry.py",
);

/** Lines of the runtime's log kept for error messages. */
const LOG_TAIL_LINES = 50;
/** Poll delays: a few immediate polls after traffic, then doubling up to a cap. */
const IMMEDIATE_POLLS = 3;
const BUSY_CAP_MS = 16;
const IDLE_CAP_MS = 200;
/** Seconds Python may wait in one poll while requests are pending (it holds pythonia's thread). */
const PENDING_WAIT_S = 0.002;

/** How the Python process ended. */
export interface PythoniaExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Options of {@link PythoniaTransport.open}. */
export interface PythoniaOpenOptions {
  /** Interpreter for pythonia's (single, shared) Python process. */
  python: string;
  /** Extra environment of that process (applied when it is spawned, and to `os.environ`). */
  env?: Record<string, string>;
  /** Working directory of the Python process (process-wide: `os.chdir`). */
  cwd?: string;
  /** Sign tensor frames too. Default false: pythonia's pipe is private to the two processes. */
  signedBuffers?: boolean;
  /** Largest incoming message the runtime accepts, bytes. */
  maxMessageBytes?: number;
  /** Worker threads of this runtime. */
  workers?: number;
  /** Each log line of the runtime. */
  onLog?: (line: string) => void;
  /** Number of requests awaiting an answer: polling stays tight while it is above 0. */
  pending?: () => number;
  /** Milliseconds allowed for spawning Python, importing torch and opening the runtime. */
  timeoutMs?: number;
}

// -- the pythonia module, typed as far as we use it ---------------------------------------

type PyCall = (...args: unknown[]) => Promise<unknown>;
interface EntryModule {
  open_server: PyCall;
  submit: PyCall;
  poll: PyCall;
  close_server: PyCall;
}
interface PythoniaCom {
  proc: ChildProcess | null;
  handlers: Record<string, ((msg: Record<string, unknown>) => unknown) | undefined>;
}
interface PythoniaLib {
  python: ((file: string) => Promise<unknown>) & { exit: () => void };
  com: PythoniaCom;
}

/**
 * pythonia spawns ONE Python process per Node process (at import). Every pythonia runtime
 * of this process is a server inside it; the process lives while one of them is open.
 */
class PythoniaHost {
  private lib: PythoniaLib | undefined;
  private entry: EntryModule | undefined;
  private starting: Promise<EntryModule> | undefined;
  private python: string | undefined;
  private proc: ChildProcess | undefined;
  private users = 0;
  private readonly exitListeners = new Set<(info: PythoniaExitInfo) => void>();
  exitInfo: PythoniaExitInfo | undefined;
  private exitHook = false;

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** The entry module, spawning Python if none runs. */
  async acquire(python: string, env: Record<string, string> | undefined, timeoutMs: number): Promise<EntryModule> {
    if (this.python !== undefined && this.python !== python && this.proc && this.exitInfo === undefined) {
      throw new StartError(`pythonia runs one Python per Node process, already ${this.python}; cannot start ${python} next to it`, {
        context: { python, running: this.python },
        hint: "close the other pythonia runtimes first, or use the same python option",
      });
    }
    this.users++;
    try {
      this.starting ??= this.spawn(python, env);
      const pending = this.starting;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StartError(`pythonia's Python did not load the runtime within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        return await Promise.race([pending, timeout]);
      } finally {
        clearTimeout(timer);
      }
    } catch (err) {
      await this.release();
      throw err;
    }
  }

  /**
   * One user fewer; the last one ends the Python process (else Node would never exit).
   * Resolves once that process has exited (at once while others still use it).
   */
  release(): Promise<void> {
    this.users = Math.max(0, this.users - 1);
    if (this.users > 0) return Promise.resolve();
    const proc = this.proc;
    const running = proc !== undefined && this.exitInfo === undefined;
    this.stop();
    if (!running || !proc) return Promise.resolve();
    return new Promise<void>((res) => {
      if (proc.exitCode !== null || proc.signalCode !== null) res();
      else proc.once("exit", () => res());
    });
  }

  onExit(listener: (info: PythoniaExitInfo) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** For tests of death detection: the Python process. */
  get child(): ChildProcess | undefined {
    return this.proc;
  }

  private async spawn(python: string, env: Record<string, string> | undefined): Promise<EntryModule> {
    // A missing interpreter would make pythonia throw inside its import (and leave a broken
    // module behind): check it first, with a clear error.
    const probe = spawnSync(python, ["-c", "import sys; assert sys.version_info >= (3, 10)"], { encoding: "utf8", timeout: 30_000 });
    if (probe.error || probe.status !== 0) {
      throw new StartError(`cannot run ${python} for pythonia (Python 3.10 or newer needed): ${probe.error?.message ?? probe.stderr.trim()}`, {
        context: { python },
      });
    }
    // pythonia reads PYTHON_BIN and the environment when it spawns, synchronously inside
    // the import (first time) or python() (after an exit): set them just around that.
    const saved = new Map<string, string | undefined>();
    const apply = (): void => {
      for (const [k, v] of Object.entries({ ...env, PYTHON_BIN: python })) {
        saved.set(k, process.env[k]);
        process.env[k] = v;
      }
    };
    const restore = (): void => {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      saved.clear();
    };
    let loading: Promise<unknown>;
    apply();
    try {
      if (!this.lib) {
        const mod = (await import("pythonia")) as unknown as { default?: PythoniaLib } & PythoniaLib;
        this.lib = mod.default ?? mod;
      }
      // After an exit pythonia respawns inside python(), synchronously.
      loading = this.lib.python(PYTHONIA_ENTRY);
    } finally {
      restore();
    }
    const proc = this.lib.com.proc;
    if (!proc) throw new StartError("pythonia did not start a Python process");
    this.proc = proc;
    this.python = python;
    this.exitInfo = undefined;
    proc.once("exit", (code, signal) => this.onProcExit(proc, { code, signal }));
    if (!this.exitHook) {
      this.exitHook = true;
      process.once("exit", () => {
        if (this.proc && this.exitInfo === undefined) this.proc.kill("SIGKILL");
      });
    }
    const entry = (await loading) as EntryModule;
    this.entry = entry;
    return entry;
  }

  private onProcExit(proc: ChildProcess, info: PythoniaExitInfo): void {
    if (proc !== this.proc) return;
    this.exitInfo = info;
    this.starting = undefined;
    this.entry = undefined;
    this.resetPythonia();
    for (const l of [...this.exitListeners]) l(info);
  }

  private stop(): void {
    const running = this.proc !== undefined && this.exitInfo === undefined;
    this.proc = undefined;
    this.starting = undefined;
    this.entry = undefined;
    if (running) this.resetPythonia();
  }

  // python.exit() kills the child and clears pythonia's timer; requests still waiting
  // on the dead process are answered with an error so their 100 s timers do not keep
  // Node alive.
  private resetPythonia(): void {
    const lib = this.lib;
    if (!lib) return;
    const handlers = lib.com.handlers;
    if (lib.com.proc) lib.python.exit();
    for (const [r, handler] of Object.entries(handlers)) {
      if (!/^\d+$/.test(r) || !handler) continue;
      delete handlers[r];
      try {
        handler({ r: Number(r), key: "error", val: "", sig: "the pythonia Python process exited" });
      } catch {
        /* the waiting request rejects; nothing else to do */
      }
    }
  }
}

const host = new PythoniaHost();

/** @internal The Python process behind pythonia, for tests of death detection. */
export function pythoniaChild(): ChildProcess | undefined {
  return host.child;
}

interface PollResult {
  m: [Channel, string[]][];
  log: string[];
  stopped: boolean;
}

function toBase64(frame: OutgoingFrame): string {
  if (typeof frame === "string") return Buffer.from(frame, "utf8").toString("base64");
  return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString("base64");
}

/**
 * Fallback transport over pythonia (JSPyBridge), for platforms where the zeromq addon
 * cannot load. Frames travel as base64 strings: `submit` hands a message to the runtime,
 * a poll loop collects what it sends back (tight while requests are pending, relaxed when
 * idle). Signing, verification and correlation stay in the layers above, exactly as over
 * ZeroMQ; nothing of pythonia but the entry module's functions is used.
 *
 * Death: the Python process's `exit` event ends this transport and resolves {@link exited}.
 */
export class PythoniaTransport implements Transport {
  readonly name = "pythonia";
  /** The session key, made here and handed to the runtime over pythonia's private pipe. */
  readonly key: Uint8Array;
  /** Whether the runtime signs and requires signed buffers. */
  readonly signedBuffers: boolean;
  /** Process id of the (shared) Python process. */
  readonly pid: number;
  /** Resolves when the Python process exits (never for a plain close of this transport). */
  readonly exited: Promise<PythoniaExitInfo>;
  /** Resolves when the runtime reported it stopped (after a shutdown_request). */
  readonly stopped: Promise<void>;
  /** Last lines of the runtime's log (for error messages). */
  readonly logTail: string[] = [];
  exitInfo: PythoniaExitInfo | undefined;

  private readonly entry: EntryModule;
  private readonly id: string;
  private readonly queue = new AsyncQueue<IncomingFrames>();
  private readonly onLog: ((line: string) => void) | undefined;
  private readonly pending: () => number;
  private isClosed = false;
  private releasing: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private quiet = 0;
  private resolveExited!: (info: PythoniaExitInfo) => void;
  private resolveStopped!: () => void;
  private readonly unsubscribe: () => void;

  private constructor(entry: EntryModule, id: string, key: Uint8Array, signedBuffers: boolean, pid: number, opts: PythoniaOpenOptions) {
    this.entry = entry;
    this.id = id;
    this.key = key;
    this.signedBuffers = signedBuffers;
    this.pid = pid;
    this.onLog = opts.onLog;
    this.pending = opts.pending ?? (() => 0);
    this.exited = new Promise((res) => (this.resolveExited = res));
    this.stopped = new Promise((res) => (this.resolveStopped = res));
    this.unsubscribe = host.onExit((info) => this.onProcessExit(info));
    void this.pollLoop();
  }

  /**
   * Starts (or reuses) pythonia's Python process and opens one runtime in it.
   * @throws StartError when Python cannot run or the runtime fails to load
   */
  static async open(opts: PythoniaOpenOptions): Promise<PythoniaTransport> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const entry = await host.acquire(opts.python, opts.env, timeoutMs);
    const key = randomBytes(32);
    const options: Record<string, unknown> = {};
    if (opts.signedBuffers !== undefined) options.signed_buffers = opts.signedBuffers;
    if (opts.maxMessageBytes !== undefined) options.max_message_bytes = opts.maxMessageBytes;
    if (opts.workers !== undefined) options.workers = opts.workers;
    if (opts.cwd !== undefined) options.cwd = opts.cwd;
    if (opts.env !== undefined) options.env = opts.env;
    let opened: { id: string; pid: number; signed_buffers: boolean };
    try {
      opened = JSON.parse(String(await entry.open_server(Buffer.from(key).toString("hex"), JSON.stringify(options)))) as typeof opened;
    } catch (cause) {
      await host.release();
      throw new StartError("the runtime did not open over pythonia", { cause, context: { python: opts.python } });
    }
    return new PythoniaTransport(entry, opened.id, key, opened.signed_buffers, opened.pid, opts);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(channel: Channel, frames: OutgoingFrame[]): Promise<void> {
    if (this.isClosed) return Promise.reject(new Error("transport closed"));
    // Encoded and written to pythonia's pipe synchronously: messages leave in call order.
    const sent = this.entry.submit(this.id, channel, frames.map(toBase64));
    this.kick();
    return sent.then(() => undefined);
  }

  incoming(): AsyncIterable<IncomingFrames> {
    return this.queue;
  }

  /**
   * Forgets the runtime in Python (cancelling what still runs) and releases the process;
   * {@link released} resolves when that is done.
   */
  close(): void {
    if (this.isClosed && this.releasing) return;
    this.isClosed = true;
    this.queue.end();
    this.kick();
    this.unsubscribe();
    const dead = this.exitInfo !== undefined;
    this.releasing = (async () => {
      if (!dead) await this.entry.close_server(this.id).catch(() => undefined);
      await host.release();
    })();
  }

  /** Resolves once {@link close} has finished (the Python process gone if it was the last user). */
  get released(): Promise<void> {
    return this.releasing ?? Promise.resolve();
  }

  /** The error for a Python process that exited, with its exit code and log tail. */
  exitedError(): RuntimeExitedError {
    const info = this.exitInfo ?? { code: null, signal: null };
    return new RuntimeExitedError(info.code, info.signal, [...this.logTail], { context: { pid: this.pid, transport: "pythonia" } });
  }

  private onProcessExit(info: PythoniaExitInfo): void {
    this.exitInfo = info;
    this.resolveExited(info);
    this.isClosed = true;
    this.queue.end();
    this.kick();
    this.unsubscribe();
  }

  private kick(): void {
    this.quiet = 0;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private delay(): Promise<void> {
    if (this.quiet <= IMMEDIATE_POLLS) return new Promise((res) => setImmediate(res));
    const cap = this.pending() > 0 ? BUSY_CAP_MS : IDLE_CAP_MS;
    const ms = Math.min(2 ** (this.quiet - IMMEDIATE_POLLS - 1), cap);
    return new Promise((res) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        res();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        res();
      };
    });
  }

  private async pollLoop(): Promise<void> {
    while (!this.isClosed) {
      let result: PollResult;
      try {
        // While requests are pending, Python waits a little for the answer (waking as soon as
        // it is queued): that beats any timer here. Never long: it holds pythonia's thread.
        const wait = this.pending() > 0 ? PENDING_WAIT_S : 0;
        result = JSON.parse(String(await this.entry.poll(this.id, wait))) as PollResult;
      } catch {
        if (this.isClosed) return;
        await new Promise((res) => setTimeout(res, 50));
        continue;
      }
      for (const line of result.log) {
        this.logTail.push(line);
        if (this.logTail.length > LOG_TAIL_LINES) this.logTail.shift();
        this.onLog?.(line);
      }
      for (const [channel, frames] of result.m) {
        this.queue.push({ channel, frames: frames.map((f) => Buffer.from(f, "base64")) });
      }
      if (result.stopped) {
        this.resolveStopped();
        return;
      }
      this.quiet = result.m.length > 0 ? 0 : this.quiet + 1;
      await this.delay();
    }
  }
}

/** How a pythonia runtime's channels are shown in `Runtime.endpoints`. */
export function pythoniaEndpoint(pid: number, channel: Channel): string {
  return `pythonia://${pid}/${channel}`;
}
