/**
 * Starting and attaching: what a runtime handle is built from (a transport, the key, the
 * process or the pythonia transport behind it), for `Runtime.start` and `Runtime.connect`.
 * @internal
 */
import { readFileSync } from "node:fs";
import { StartError, ValidationError } from "../errors.ts";
import { PythoniaTransport, pythoniaEndpoint } from "../transport/pythonia.ts";
import type { Endpoints, Transport, TransportFactory } from "../transport/transport.ts";
import { LifecycleEmitter } from "./emitter.ts";
import { ConnectOptionsSchema, type ConnectOptions, type ResolvedConnectOptions, type ResolvedRuntimeOptions } from "./options.ts";
import { RuntimeProcess, defaultPython, parseConnectionInfo } from "./process.ts";
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

/** Spawns a runtime process; `build` waits for its connection file and connects over ZeroMQ. */
export async function spawnLaunch(opts: ResolvedRuntimeOptions, emitter: LifecycleEmitter, deadline: number, connect: TransportFactory): Promise<Launch> {
  const proc = await RuntimeProcess.spawn(opts, (l) => emitter.emit({ type: "log", ...l }));
  const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  return {
    async build() {
      const info = await proc.waitForConnection(deadline);
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
  };
}

/** Opens a server in the shared pythonia process. `pending`: requests in flight on it. */
export async function pythoniaLaunch(opts: ResolvedRuntimeOptions, emitter: LifecycleEmitter, deadline: number, pending: () => number): Promise<Launch> {
  const transport = await PythoniaTransport.open({
    python: opts.python ?? defaultPython(),
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.signedBuffers !== undefined ? { signedBuffers: opts.signedBuffers } : {}),
    ...(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {}),
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    onLog: (line) => emitter.emit({ type: "log", stream: "stderr", line }),
    pending,
    timeoutMs: Math.max(1, deadline - Date.now()),
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
