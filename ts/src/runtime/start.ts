/**
 * Starting and attaching: what a runtime handle is built from (a transport, the key, the
 * process or the pythonia transport behind it), for `Runtime.start` and `Runtime.connect`.
 * @internal
 */
import { readFileSync } from "node:fs";
import { RuntimeExitedError, StartError, ValidationError } from "../errors.ts";
import { PythoniaTransport, pythoniaEndpoint } from "../transport/pythonia.ts";
import type { Endpoints, Transport, TransportFactory } from "../transport/transport.ts";
import { LifecycleEmitter } from "./emitter.ts";
import { ConnectOptionsSchema, type ConnectOptions, type ResolvedConnectOptions, type ResolvedRuntimeOptions } from "./options.ts";
import { RuntimeProcess, findPython, parseConnectionInfo, probeError, probePython, runtimeEnvExtra, SETUP_COMMAND, type PythonChoice } from "./process.ts";
import { CLOSE_STEP_MS } from "./shutdown.ts";
import { fromZodError } from "./validate.ts";

/** Largest message accepted when the options set no limit. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 ** 3;

/** What a runtime handle is built from. */
export interface Parts {
  transport: Transport;
  key: Uint8Array;
  signedBuffers: boolean;
  maxMessageBytes: number;
  proc?: RuntimeProcess;
  pythonia?: PythoniaTransport;
  endpoints: Endpoints;
  emitter: LifecycleEmitter;
}

/** A start under way: `build` finishes it; `abandon` releases what was started when that fails. */
export interface Launch {
  build(): Promise<Parts>;
  abandon(): Promise<void>;
  /** Message of the StartError when `build` or the handshake fails with an unexpected error. */
  failure: string;
  /** The StartError for a runtime process that exited before the handshake completed. */
  exitedError?(err: RuntimeExitedError): StartError;
}

let zeromqLoad: Promise<TransportFactory | Error> | undefined;
/**
 * The ZeroMQ transport factory, or the error that kept its native addon from loading
 * (imported lazily so that a platform without the addon can still use pythonia).
 */
export function loadZeroMQ(): Promise<TransportFactory | Error> {
  zeromqLoad ??= import("../transport/zeromq.ts").then(
    (m) => m.ZeroMQTransport.connect as TransportFactory,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  return zeromqLoad;
}

/**
 * The ZeroMQ factory for `opts.transport`, or undefined for pythonia; with `"auto"` where the
 * addon cannot load, `fallback` says so (the caller warns).
 * @throws StartError for `transport: "zeromq"` where the addon cannot load
 */
export async function chooseTransport(opts: ResolvedRuntimeOptions): Promise<{ zeromq?: TransportFactory; fallback?: string }> {
  if (opts.transport === "pythonia") return {};
  const loaded = await loadZeroMQ();
  if (!(loaded instanceof Error)) return { zeromq: loaded };
  if (opts.transport === "zeromq") {
    throw new StartError(`the zeromq native addon cannot load here: ${loaded.message}`, {
      cause: loaded,
      hint: 'use transport: "pythonia" (or "auto") on this platform',
    });
  }
  return { fallback: `the zeromq native addon cannot load (${loaded.message}); using the pythonia transport` };
}

/** Longest wait for the start-up check of the interpreter (it imports nothing heavy). */
export const PROBE_TIMEOUT_MS = 10_000;

/**
 * Chooses the interpreter and checks, before the real start, that it can run this package's
 * runtime (`python -c`: the packages import, the protocol and release match).
 * @throws StartError naming the interpreter, what it lacks and the command that fixes it
 */
export async function checkPython(opts: ResolvedRuntimeOptions, deadline: number): Promise<PythonChoice> {
  const choice = findPython(opts.python);
  const timeoutMs = Math.max(1, Math.min(PROBE_TIMEOUT_MS, deadline - Date.now()));
  const result = await probePython(choice.python, { ...(opts.env ? { env: opts.env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}), timeoutMs });
  const err = probeError(result, choice);
  if (err) throw err;
  return choice;
}

/** The StartError for a runtime that exited before it was ready. */
function exitedDuringStart(err: RuntimeExitedError, choice: PythonChoice): StartError {
  const how = err.signal ? `was killed by ${err.signal}` : `exited with code ${err.exitCode}`;
  const tail = err.stderrTail.length > 0 ? `\nlast stderr lines:\n${err.stderrTail.join("\n")}` : "";
  return new StartError(`the nearpos runtime (${choice.python} -m nearpos_runtime serve) ${how} during start${tail}`, {
    cause: err,
    reason: "exited",
    python: choice.python,
    tried: choice.tried,
    exitCode: err.exitCode,
    signal: err.signal,
    stderrTail: err.stderrTail,
    fix: SETUP_COMMAND,
    hint: `read the stderr lines above; if the Python packages are broken, run \`${SETUP_COMMAND}\` to reinstall them`,
  });
}

/** Spawns a runtime process; `build` waits for its connection file and connects over ZeroMQ. */
export async function spawnLaunch(opts: ResolvedRuntimeOptions, emitter: LifecycleEmitter, deadline: number, connect: TransportFactory): Promise<Launch> {
  const choice = await checkPython(opts, deadline);
  const proc = await RuntimeProcess.spawn({ ...opts, python: choice.python }, (l) => emitter.emit({ type: "log", ...l }));
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  return {
    async build() {
      let info;
      try {
        info = await proc.waitForConnection(deadline);
      } catch (err) {
        throw err instanceof RuntimeExitedError ? exitedDuringStart(err, choice) : err;
      }
      const endpoints = { request: info.request, control: info.control };
      const transport = await connect(endpoints, { maxMessageBytes });
      return { endpoints, transport, key: proc.key, signedBuffers: info.signed_buffers, maxMessageBytes, proc, emitter };
    },
    async abandon() {
      proc.kill("SIGKILL");
      await proc.waitExit(CLOSE_STEP_MS);
      await proc.removeDir();
    },
    failure: "the runtime failed to start",
    exitedError: (err) => exitedDuringStart(err, choice),
  };
}

/** Opens a server in the shared pythonia process. `pending`: requests in flight on it. */
export async function pythoniaLaunch(opts: ResolvedRuntimeOptions, emitter: LifecycleEmitter, deadline: number, pending: () => number): Promise<Launch> {
  const choice = findPython(opts.python);
  const env = runtimeEnvExtra(opts.env);
  const transport = await PythoniaTransport.open({
    python: choice.python,
    ...(env ? { env } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.signedBuffers !== undefined ? { signedBuffers: opts.signedBuffers } : {}),
    ...(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {}),
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    onLog: (line) => emitter.emit({ type: "log", stream: "stderr", line }),
    pending,
    timeoutMs: Math.max(1, deadline - Date.now()),
  }).catch(async (err: unknown) => {
    // pythonia's own errors are terse: where the interpreter cannot run this package's
    // runtime, say what it lacks instead (one Python per Node process stays its own error).
    if (err instanceof StartError && err.context.running !== undefined) throw err;
    const diagnosis = probeError(await probePython(choice.python, { ...(opts.env ? { env: opts.env } : {}), timeoutMs: PROBE_TIMEOUT_MS }), choice);
    if (diagnosis) throw new StartError(diagnosis.message, { cause: err, reason: diagnosis.reason, python: diagnosis.python, missing: diagnosis.missing, tried: diagnosis.tried, ...(diagnosis.fix ? { fix: diagnosis.fix } : {}), ...(diagnosis.hint ? { hint: diagnosis.hint } : {}) });
    throw err;
  });
  return {
    async build() {
      const endpoints = { request: pythoniaEndpoint(transport.pid, "request"), control: pythoniaEndpoint(transport.pid, "control") };
      const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
      return { endpoints, transport, key: transport.key, signedBuffers: transport.signedBuffers, maxMessageBytes, pythonia: transport, emitter };
    },
    async abandon() {
      transport.close();
      await transport.released;
    },
    failure: "the runtime failed to start over pythonia",
  };
}

function isLocal(endpoint: string): boolean {
  if (endpoint.startsWith("ipc://")) return true;
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):\d+$/.exec(endpoint);
  return m !== null && ["127.0.0.1", "[::1]", "localhost"].includes(m[1] as string);
}

/** The endpoints and signing of a runtime started elsewhere, from the options. */
function attachTo(opts: ResolvedConnectOptions): { endpoints: Endpoints; signedBuffers: boolean } {
  let endpoints: Endpoints;
  let signedBuffers = opts.signedBuffers;
  if (opts.connectionFile) {
    const info = parseConnectionInfo(readFileSync(opts.connectionFile, "utf8"), opts.connectionFile);
    endpoints = { request: info.request, control: info.control };
    signedBuffers ??= info.signed_buffers;
  } else if (opts.request && opts.control) {
    endpoints = { request: opts.request, control: opts.control };
  } else {
    throw new ValidationError("options", "give connectionFile, or both request and control endpoints");
  }
  const remote = !isLocal(endpoints.request) || !isLocal(endpoints.control);
  if (remote && !opts.allowRemote) {
    throw new ValidationError("options.allowRemote", `endpoint ${endpoints.request} / ${endpoints.control} is not local; pass allowRemote: true to use it`, {
      hint: "remote runtimes need --allow-remote on the runtime as well; the key then travels out of band",
    });
  }
  return { endpoints, signedBuffers: remote ? true : (signedBuffers ?? endpoints.request.startsWith("tcp://")) };
}

/**
 * The parts of a handle on a runtime started elsewhere, connected, and the parsed options.
 * @throws ValidationError for bad options or a non-local endpoint without `allowRemote`
 */
export async function connectParts(options: ConnectOptions, transportFactory?: TransportFactory): Promise<{ parts: Parts; opts: ResolvedConnectOptions }> {
  const parsed = ConnectOptionsSchema.safeParse(options);
  if (!parsed.success) throw fromZodError(parsed.error, "options");
  const opts = parsed.data;
  const { endpoints, signedBuffers } = attachTo(opts);
  const key = typeof opts.key === "string" ? Buffer.from(opts.key, "hex") : opts.key;
  if (key.byteLength !== 32) throw new ValidationError("options.key", `must be 32 bytes, got ${key.byteLength}`);
  let factory = transportFactory;
  if (!factory) {
    const loaded = await loadZeroMQ();
    if (loaded instanceof Error) throw new StartError(`the zeromq native addon cannot load here: ${loaded.message}`, { cause: loaded });
    factory = loaded;
  }
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const transport = await factory(endpoints, { maxMessageBytes });
  const parts: Parts = { endpoints, transport, key, signedBuffers, maxMessageBytes, emitter: new LifecycleEmitter() };
  return { parts, opts };
}
