import * as training from "../training/index.ts";
import type {
  CheckpointLoadParams,
  CheckpointSaveParams,
  EmbedParams,
  EmbedResult,
  EvaluateParams,
  EvaluateResult,
  TrainConfig,
  TrainOptions,
  TrainRun,
} from "../training/index.ts";
import { readFileSync } from "node:fs";
import {
  CancelledError,
  ClosedError,
  MessageTooLargeError,
  NearposError,
  ProtocolError,
  PythonError,
  RuntimeUnreachableError,
  StartError,
  TimeoutError,
  ValidationError,
} from "../errors.ts";
import type {
  CancelReply,
  ErrorContent,
  HeartbeatReply,
  HelloReply,
  PluginInfo,
  RuntimeEvent,
  ShutdownReply,
} from "../protocol/messages.ts";
import { ReplayGuard } from "../protocol/replay.ts";
import { checkDescriptors, decodeTensors, encodeTensors, isPlain } from "../protocol/tensors.ts";
import { PROTOCOL_MAJOR, PROTOCOL_VERSION } from "../protocol/version.ts";
import {
  SIGNATURE_BYTES,
  decodeMessage,
  emptyDropCounts,
  frameMessage,
  makeHeader,
  messageBytes,
  newId,
  signFrames,
  type DropCounts,
  type VerifyOptions,
  type WireMessage,
} from "../protocol/wire.ts";
import type { Tensor } from "../tensor.ts";
import type { Channel, Endpoints, IncomingFrames, Transport, TransportFactory } from "../transport/transport.ts";
import { PythoniaTransport, pythoniaEndpoint } from "../transport/pythonia.ts";
import { type Call, CallState } from "./call.ts";
import { LifecycleEmitter, type RuntimeLifecycleEvent } from "./emitter.ts";
import {
  type CallOptions,
  ConnectOptionsSchema,
  type ConnectOptions,
  RuntimeOptionsSchema,
  type RuntimeOptions,
  type ResolvedRuntimeOptions,
} from "./options.ts";
import { RuntimeProcess, defaultPython, parseConnectionInfo, sleep } from "./process.ts";
import { ParamsValidator, fromZodError } from "./validate.ts";

const CLIENT_NAME = "nearpos-ts 0.1.0";
const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 ** 3;
/** How long close() waits for each step (shutdown reply, exit after stdin EOF, SIGTERM). */
const CLOSE_STEP_MS = 2000;

/** Params of the `mine` method (docs/protocol.md, Built-in methods). */
export interface MineParams {
  /** Sampler name, e.g. `"nearest-positive"` (a plugin or a built-in miner). */
  sampler: string;
  /** The sampler's options, checked against its config schema. Default `{}`. */
  config?: Record<string, unknown>;
  /** Embeddings, float tensor of shape [n, d]. */
  embeddings: Tensor;
  /** Class labels, integer tensor of shape [n]. */
  labels: Tensor;
  /** Reference embeddings [m, d] mined against instead of `embeddings`. */
  ref_embeddings?: Tensor;
  /** Labels of `ref_embeddings`, [m]. */
  ref_labels?: Tensor;
}

/** Result of `mine`: triplet indices (int64 tensors of equal length) and diagnostics. */
export interface MineResult {
  indices: { anchors: Tensor<"int64">; positives: Tensor<"int64">; negatives: Tensor<"int64"> };
  diagnostics: Record<string, unknown>;
}

/** Params of the `loss` method. */
export interface LossParams {
  /** Loss name, e.g. `"triplet_margin"`. */
  loss: string;
  /** The loss's options. Default `{}`. */
  loss_config?: Record<string, unknown>;
  /** Sampler name. */
  sampler: string;
  /** The sampler's options. Default `{}`. */
  config?: Record<string, unknown>;
  /** Embeddings [n, d]. */
  embeddings: Tensor;
  /** Labels [n]. */
  labels: Tensor;
}

/** Result of `loss`. */
export interface LossResult {
  /** The loss value. */
  value: number;
  diagnostics: Record<string, unknown>;
}

/** Options of {@link Runtime.call}: those of {@link CallOptions} and an event callback. */
export interface CallWithEventsOptions extends CallOptions {
  /** Called with each event of the call, in order. */
  onEvent?: (event: RuntimeEvent) => void;
}

interface ControlWaiter {
  resolve: (content: Record<string, unknown>) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

interface Parts {
  transport: Transport;
  key: Uint8Array;
  signedBuffers: boolean;
  maxMessageBytes: number;
  proc?: RuntimeProcess;
  pythonia?: PythoniaTransport;
  endpoints: Endpoints;
  emitter: LifecycleEmitter;
}

/** The transports a runtime can use (see {@link RuntimeOptions.transport}). */
export type TransportName = "zeromq" | "pythonia";

let zeromqLoad: Promise<TransportFactory | Error> | undefined;
/**
 * The ZeroMQ transport factory, or the error that kept its native addon from loading
 * (imported lazily so that a platform without the addon can still use pythonia).
 * @internal
 */
export function loadZeroMQ(): Promise<TransportFactory | Error> {
  zeromqLoad ??= import("../transport/zeromq.ts").then(
    (m) => m.ZeroMQTransport.connect as TransportFactory,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  return zeromqLoad;
}

function isLocal(endpoint: string): boolean {
  if (endpoint.startsWith("ipc://")) return true;
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):\d+$/.exec(endpoint);
  return m !== null && ["127.0.0.1", "[::1]", "localhost"].includes(m[1] as string);
}

/**
 * A handle on one PyTorch runtime process (docs/protocol.md).
 *
 * Concurrency: any number of calls may be in flight at once, from any number of callers;
 * replies are matched by id. The runtime runs them on its worker threads. `close()` may be
 * called at any time and more than once; calls made after it (or after the runtime died)
 * reject at once.
 *
 * @example
 * ```ts
 * await using rt = await Runtime.start();
 * const echoed = await rt.call("echo", { x: Tensor.from([1, 2, 3]) });
 * ```
 */
export class Runtime implements AsyncDisposable {
  /** What the runtime said about itself at start (methods, plugins, devices, versions). */
  readonly hello!: HelloReply;
  /** This client's session id. */
  readonly session = newId();
  /** Messages this client dropped, per reason (bad signature, replay ...). */
  readonly dropped: DropCounts = emptyDropCounts();

  private readonly link: Transport;
  private readonly key: Uint8Array;
  private readonly signedBuffers: boolean;
  private readonly maxMessageBytes: number;
  private readonly proc: RuntimeProcess | undefined;
  private readonly pythonia: PythoniaTransport | undefined;
  private readonly endpointsInfo: Endpoints;
  private readonly emitter: LifecycleEmitter;
  private readonly replay = new ReplayGuard();
  private readonly verifyOptions: VerifyOptions;
  private readonly calls = new Map<string, CallState<unknown>>();
  private readonly aborted = new Set<string>();
  private readonly control = new Map<string, ControlWaiter>();
  private validator = new ParamsValidator([]);
  private dead: NearposError | undefined;
  private closing: Promise<void> | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  /** Set while heartbeats go unanswered; cleared when the runtime answers again. */
  private unreachable: RuntimeUnreachableError | undefined;
  private unreachableSince = 0;
  /** Calls rejected as unreachable: cancelled in the runtime once it answers again. */
  private readonly lost = new Set<string>();
  /** Every settled call leaves the tables (one function for all calls, not one per call). */
  private readonly forget = (id: string): void => {
    this.calls.delete(id);
    this.aborted.delete(id);
  };

  private constructor(parts: Parts) {
    this.link = parts.transport;
    this.key = parts.key;
    this.signedBuffers = parts.signedBuffers;
    this.maxMessageBytes = parts.maxMessageBytes;
    this.proc = parts.proc;
    this.pythonia = parts.pythonia;
    this.endpointsInfo = parts.endpoints;
    this.emitter = parts.emitter;
    this.verifyOptions = { key: this.key, signedBuffers: this.signedBuffers, maxMessageBytes: this.maxMessageBytes, replay: this.replay };
    if (this.link.listen) this.link.listen((m) => this.onIncoming(m));
    else void this.receiveLoop();
    if (this.proc) void this.proc.exited.then(() => this.onExit());
    if (this.pythonia) void this.pythonia.exited.then(() => this.onPythoniaExit());
  }

  /**
   * Spawns a runtime and completes the handshake.
   *
   * @param options - see {@link RuntimeOptions}; validated before anything starts
   * @returns a ready runtime whose {@link hello} holds the hello reply
   * @throws ValidationError for bad options; RuntimeExitedError when the process exits
   *   during start (exit code and stderr tail); TimeoutError after `startTimeoutMs`;
   *   StartError for `transport: "zeromq"` where its native addon cannot load, or when
   *   pythonia cannot run the interpreter
   */
  static async start(options: RuntimeOptions = {}): Promise<Runtime> {
    const parsed = RuntimeOptionsSchema.safeParse(options);
    if (!parsed.success) throw fromZodError(parsed.error, "options");
    const opts = parsed.data;
    const deadline = Date.now() + opts.startTimeoutMs;
    const emitter = new LifecycleEmitter();
    const onLog = opts.onLog;
    if (onLog) emitter.on("log", onLog);
    let connectZeroMQ: TransportFactory | undefined;
    let fallback: string | undefined;
    if (opts.transport !== "pythonia") {
      const loaded = await loadZeroMQ();
      if (loaded instanceof Error) {
        if (opts.transport === "zeromq") {
          throw new StartError(`the zeromq native addon cannot load here: ${loaded.message}`, {
            cause: loaded,
            hint: 'use transport: "pythonia" (or "auto") on this platform',
          });
        }
        fallback = `the zeromq native addon cannot load (${loaded.message}); using the pythonia transport`;
        emitter.emit({ type: "log", stream: "stderr", line: `nearpos warning: ${fallback}` });
      } else {
        connectZeroMQ = loaded;
      }
    }
    if (!connectZeroMQ) {
      const rt = await Runtime.startPythonia(opts, emitter, deadline);
      rt.watch(opts.heartbeatIntervalMs, opts.heartbeatMisses);
      // After start resolves, so that `rt.on("warning", ...)` right after it sees it.
      if (fallback) {
        const message = fallback;
        setImmediate(() => emitter.emit({ type: "warning", message }));
      }
      return rt;
    }
    const proc = await RuntimeProcess.spawn(opts, (l) => emitter.emit({ type: "log", ...l }));
    const connect = connectZeroMQ;
    const maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const rt = await Runtime.finishStart(
      async () => {
        const info = await proc.waitForConnection(deadline);
        const endpoints = { request: info.request, control: info.control };
        return new Runtime({
          endpoints,
          transport: await connect(endpoints, { maxMessageBytes }),
          key: proc.key,
          signedBuffers: info.signed_buffers,
          maxMessageBytes,
          proc,
          emitter,
        });
      },
      deadline,
      async () => {
        proc.kill("SIGKILL");
        await proc.waitExit(CLOSE_STEP_MS);
        await proc.removeDir();
      },
      "the runtime failed to start",
    );
    rt.watch(opts.heartbeatIntervalMs, opts.heartbeatMisses);
    return rt;
  }

  /**
   * The common end of both start paths: build the Runtime and complete the hello
   * handshake; on any failure close what was built (or `abandon` what was not) and throw.
   */
  private static async finishStart(
    build: () => Promise<Runtime>,
    deadline: number,
    abandon: () => Promise<void>,
    failure: string,
  ): Promise<Runtime> {
    let rt: Runtime | undefined;
    try {
      rt = await build();
      await rt.handshake(Math.max(1, deadline - Date.now()));
      return rt;
    } catch (err) {
      if (rt) await rt.close();
      else await abandon();
      if (err instanceof NearposError) throw err;
      throw new StartError(failure, { cause: err });
    }
  }

  private static async startPythonia(opts: ResolvedRuntimeOptions, emitter: LifecycleEmitter, deadline: number): Promise<Runtime> {
    let rt: Runtime | undefined;
    const transport = await PythoniaTransport.open({
      python: opts.python ?? defaultPython(),
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.signedBuffers !== undefined ? { signedBuffers: opts.signedBuffers } : {}),
      ...(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {}),
      ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
      onLog: (line) => emitter.emit({ type: "log", stream: "stderr", line }),
      pending: () => (rt ? rt.calls.size + rt.control.size : 1),
      timeoutMs: Math.max(1, deadline - Date.now()),
    });
    return Runtime.finishStart(
      async () =>
        (rt = new Runtime({
          endpoints: { request: pythoniaEndpoint(transport.pid, "request"), control: pythoniaEndpoint(transport.pid, "control") },
          transport,
          key: transport.key,
          signedBuffers: transport.signedBuffers,
          maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
          pythonia: transport,
          emitter,
        })),
      deadline,
      async () => {
        transport.close();
        await transport.released;
      },
      "the runtime failed to start over pythonia",
    );
  }

  /**
   * Attaches to a runtime started elsewhere (by hand, or by another process).
   * `close()` then only disconnects; it does not stop that runtime.
   *
   * There is no child process to watch, so liveness comes from heartbeats on the control
   * channel (`heartbeatIntervalMs`, `heartbeatMisses`): once that many in a row go
   * unanswered, every pending call rejects with {@link RuntimeUnreachableError}, and so do
   * new calls until the runtime answers again (an `unreachable`, then a `reachable` event).
   *
   * @throws ValidationError for a non-local endpoint without `allowRemote: true`
   */
  static async connect(options: ConnectOptions, transportFactory?: TransportFactory): Promise<Runtime> {
    const parsed = ConnectOptionsSchema.safeParse(options);
    if (!parsed.success) throw fromZodError(parsed.error, "options");
    const opts = parsed.data;
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
    signedBuffers = remote ? true : (signedBuffers ?? endpoints.request.startsWith("tcp://"));
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
    const rt = new Runtime({
      endpoints,
      transport,
      key,
      signedBuffers,
      maxMessageBytes,
      emitter: new LifecycleEmitter(),
    });
    try {
      await rt.handshake(opts.timeoutMs);
    } catch (err) {
      await rt.close();
      throw err;
    }
    rt.watch(opts.heartbeatIntervalMs, opts.heartbeatMisses);
    return rt;
  }

  /** Plugins the runtime loaded (from hello). */
  get plugins(): PluginInfo[] {
    return this.hello.plugins;
  }

  /** Names of the runtime's methods (from hello). */
  get methods(): string[] {
    return this.validator.names;
  }

  /** Process id of the runtime. */
  get pid(): number {
    return this.hello.pid;
  }

  /** The runtime's endpoints (from its connection file). */
  get endpoints(): Endpoints {
    return { ...this.endpointsInfo };
  }

  /** Name of the transport in use (`"zeromq"`, `"pythonia"`, or a custom factory's). */
  get transportName(): string {
    return this.link.name;
  }

  /** The transport in use: `"zeromq"`, or `"pythonia"` (the fallback). */
  get transport(): TransportName | string {
    return this.link.name;
  }

  /**
   * True until close() was called or the runtime exited; false also while it is
   * unreachable (heartbeats unanswered), and true again once it answers.
   */
  get alive(): boolean {
    return this.dead === undefined && this.closing === undefined && this.unreachable === undefined;
  }

  /** Number of calls in flight. */
  get pending(): number {
    return this.calls.size;
  }

  /**
   * Calls a method and waits for its result.
   *
   * Params may hold {@link Tensor}s anywhere; they travel as raw buffers, and tensors in the
   * result come back as Tensors. Params are checked against the method's JSON Schema before
   * anything is sent.
   *
   * @throws UnknownMethodError, ValidationError or MessageTooLargeError (checked before
   *   anything is sent); the promise rejects with PythonError, CancelledError, TimeoutError,
   *   MessageTooLargeError (a reply larger than `maxMessageBytes`), RuntimeExitedError or
   *   RuntimeUnreachableError
   */
  call<T = unknown>(method: string, params: Record<string, unknown> = {}, options: CallWithEventsOptions = {}): Promise<T> {
    // As an async function would, but without wrapping the result in one more promise:
    // a failure before sending rejects the returned promise rather than throwing.
    try {
      return this.stream<T>(method, params, options).result;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Starts a call and returns at once with its events and result.
   * @throws UnknownMethodError, ValidationError or MessageTooLargeError (the whole encoded
   *   message is larger than the runtime accepts) before anything is sent;
   *   RuntimeUnreachableError while the runtime does not answer heartbeats
   */
  stream<T = unknown>(method: string, params: Record<string, unknown> = {}, options: CallWithEventsOptions = {}): Call<T> {
    if (this.dead) throw this.dead;
    if (this.closing) throw new ClosedError();
    if (this.unreachable) throw this.unreachable;
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
      throw new ValidationError("timeoutMs", `must be a positive number of milliseconds, got ${options.timeoutMs}`);
    }
    this.validator.checkMethod(method);
    const encoded = encodeTensors(params);
    this.validator.check(method, encoded.json);
    const id = newId();
    const msg: WireMessage = {
      header: makeHeader({ msgType: "call_request", session: this.session, buffers: encoded.descriptors, signedBuffers: this.signedBuffers, msgId: id }),
      content: { method, params: encoded.json },
      buffers: encoded.frames,
    };
    // The whole message counts against the runtime's limit (it would drop a larger one
    // unanswered); measured before anything is hashed.
    const frames = frameMessage(msg);
    const bytes = messageBytes(frames) + SIGNATURE_BYTES;
    const limit = this.hello.max_message_bytes;
    if (bytes > limit) {
      throw new MessageTooLargeError("request", bytes, limit, `the call_request of ${method} takes ${bytes} bytes, more than the runtime accepts (max_message_bytes ${limit})`, {
        context: { method },
      });
    }
    if (options.signal?.aborted) {
      const state = new CallState<T>(id, method, options.onEvent);
      state.reject(new CancelledError("the call was aborted before it was sent", { cause: options.signal.reason, context: { method } }));
      return state;
    }
    const state = new CallState<T>(id, method, options.onEvent, this.forget);
    const call = state as unknown as CallState<unknown>;
    this.calls.set(id, call);
    this.link.send("request", signFrames(frames, this.key, this.signedBuffers)).catch((err: unknown) => {
      state.reject(this.dead ?? new NearposError("protocol_error", "sending the call failed", { cause: err }));
    });
    if (options.signal) {
      const signal = options.signal;
      const onAbort = (): void => {
        this.aborted.add(id);
        void this.cancel(call);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      state.onSettle(() => signal.removeEventListener("abort", onAbort));
    }
    if (options.timeoutMs !== undefined) {
      const ms = options.timeoutMs;
      const timer = setTimeout(() => {
        state.reject(new TimeoutError(`${method} did not finish within ${ms} ms`, { context: { method, timeoutMs: ms, id } }));
        void this.sendCancel(id).catch(() => undefined);
      }, ms);
      state.onSettle(() => clearTimeout(timer));
    }
    return state;
  }

  /** Liveness and counters of the runtime (control channel: never queued behind calls). */
  async heartbeat(timeoutMs = 5000): Promise<HeartbeatReply> {
    return (await this.request("heartbeat_request", {}, timeoutMs)) as unknown as HeartbeatReply;
  }

  /** Mines triplets with a sampler (the `mine` method). */
  async mine(params: MineParams, options: CallOptions = {}): Promise<MineResult> {
    return this.call<MineResult>("mine", { config: {}, ...params }, options);
  }

  /** Computes a loss with a sampler's triplets (the `loss` method). */
  async loss(params: LossParams, options: CallOptions = {}): Promise<LossResult> {
    return this.call<LossResult>("loss", { loss_config: {}, config: {}, ...params }, options);
  }

  /**
   * Starts a training run (the `train` method; see docs/training.md).
   * @param config - validated against the runtime's schema before anything is sent
   * @returns the run: `events` (step, epoch, eval, checkpoint, warning) and `result`
   * @example
   * ```ts
   * const run = rt.train({ data: { kind: "mnist" }, model: { kind: "mlp" }, steps: 200 });
   * for await (const ev of run.events) if (ev.type === "eval") console.log(ev.data.metrics.coarse);
   * const { model, metrics } = await run.result;
   * ```
   */
  train(config: TrainConfig, options: TrainOptions = {}): TrainRun {
    return training.train(this, config, options);
  }

  /** Embeds a data set with a trained model (the `embed` method). */
  embed(params: EmbedParams, options: { signal?: AbortSignal } = {}): Promise<EmbedResult> {
    return training.embed(this, params, options);
  }

  /** Retrieval metrics (Recall@K, MAP@R, R-Precision, NMI) of a model or of given embeddings. */
  evaluate(params: EvaluateParams, options: { signal?: AbortSignal } = {}): Promise<EvaluateResult> {
    return training.evaluate(this, params, options);
  }

  /** Writes a model checkpoint atomically (the `checkpoint_save` method). */
  saveCheckpoint(params: CheckpointSaveParams): Promise<{ path: string }> {
    return training.saveCheckpoint(this, params);
  }

  /** Loads a checkpoint (weights only) and returns a model handle (the `checkpoint_load` method). */
  loadCheckpoint(params: CheckpointLoadParams): Promise<{ model: string; model_config: Record<string, unknown> }> {
    return training.loadCheckpoint(this, params);
  }

  /**
   * Subscribes to runtime events (`log`, `exit`, `dropped`).
   * @returns a function that unsubscribes
   */
  on<T extends RuntimeLifecycleEvent["type"]>(type: T, listener: (event: Extract<RuntimeLifecycleEvent, { type: T }>) => void): () => void {
    return this.emitter.on(type, listener);
  }

  /** Runtime events from now on, ending when the runtime is closed or exits. */
  events(): AsyncIterable<RuntimeLifecycleEvent> {
    return this.emitter.iterate();
  }

  /**
   * Stops the runtime and releases everything: shutdown request (short timeout), then stdin
   * EOF, SIGTERM, SIGKILL; closes the sockets; removes the private directory. Calls still in
   * flight reject (CancelledError from the runtime, else ClosedError). Idempotent.
   * For a runtime attached with {@link connect}, only disconnects.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  /** `await using rt = await Runtime.start()` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------- internals

  private async handshake(timeoutMs: number): Promise<void> {
    // max_message_bytes: the runtime then never sends this client more (an error instead).
    const hello = (await this.request("hello_request", { client: CLIENT_NAME, max_message_bytes: this.maxMessageBytes }, timeoutMs)) as unknown as HelloReply;
    const major = Number(String(hello.protocol_version).split(".")[0]);
    if (major !== PROTOCOL_MAJOR) {
      throw new ProtocolError(`the runtime speaks protocol ${hello.protocol_version}, this client ${PROTOCOL_VERSION}`, {
        context: { remoteCode: "unsupported_version" },
      });
    }
    (this as { hello: HelloReply }).hello = hello;
    this.validator = new ParamsValidator(hello.methods ?? []);
  }

  private async request(msgType: string, content: Record<string, unknown>, timeoutMs: number, unref = false): Promise<Record<string, unknown>> {
    if (this.dead) throw this.dead;
    if (this.link.closed) throw new ClosedError();
    const header = makeHeader({ msgType, session: this.session, signedBuffers: this.signedBuffers });
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.control.delete(header.msg_id);
        reject(new TimeoutError(`no ${msgType.replace("_request", "_reply")} within ${timeoutMs} ms`, { context: { msgType, timeoutMs } }));
      }, timeoutMs);
      if (unref) timer.unref();
      this.control.set(header.msg_id, { resolve, reject, timer });
    });
    this.link.send("control", signFrames(frameMessage({ header, content, buffers: [] }), this.key, this.signedBuffers)).catch((err: unknown) => {
      const w = this.control.get(header.msg_id);
      if (w) {
        this.control.delete(header.msg_id);
        clearTimeout(w.timer);
        w.reject(this.dead ?? new ClosedError("sending on the control channel failed", { cause: err }));
      }
    });
    return reply;
  }

  // Liveness, for both kinds of handle: one heartbeat at a time, each given `intervalMs`;
  // the next goes out `intervalMs` after the previous one was sent. After `misses` in a row
  // the runtime counts as unreachable, and the watch goes on probing: the first answer
  // after that makes the handle usable again. Unref'd timers: the watch never keeps Node
  // alive on its own. It ends with close() or the runtime's exit.
  private watch(intervalMs: number, misses: number): void {
    if (intervalMs <= 0) return;
    let missed = 0;
    const schedule = (delay: number): void => {
      this.watchTimer = setTimeout(() => void tick(), delay);
      this.watchTimer.unref();
    };
    const tick = async (): Promise<void> => {
      this.watchTimer = undefined;
      if (this.dead || this.closing) return;
      const sent = Date.now();
      try {
        await this.request("heartbeat_request", {}, intervalMs, true);
        missed = 0;
        if (this.unreachable) this.onReachable();
      } catch {
        if (this.dead || this.closing) return;
        missed++;
        if (missed >= misses && !this.unreachable) this.onUnreachable(intervalMs, misses);
      }
      schedule(Math.max(0, intervalMs - (Date.now() - sent)));
    };
    schedule(intervalMs);
  }

  private onUnreachable(intervalMs: number, misses: number): void {
    const err = new RuntimeUnreachableError(this.endpointsInfo, intervalMs, misses);
    this.unreachable = err;
    this.unreachableSince = Date.now();
    // Calls the runtime may still be running: cancelled there once it answers again.
    for (const id of this.calls.keys()) this.lost.add(id);
    this.rejectAll(err, false);
    this.emitter.emit({ type: "unreachable", missed: misses });
  }

  private onReachable(): void {
    this.unreachable = undefined;
    for (const id of this.lost) void this.sendCancel(id).catch(() => undefined);
    this.lost.clear();
    this.emitter.emit({ type: "reachable", afterMs: Date.now() - this.unreachableSince });
  }

  // The transport connected a channel anew (ZeroMQ cut it over a frame past our limit):
  // whatever was in flight on it will not be answered, so it must not wait for ever.
  private onReset(channel: Channel, why: string): void {
    const err = new ProtocolError(`the ${channel} channel was reset: ${why}; what was in flight on it is lost`, { context: { channel } });
    if (channel === "control") {
      for (const [id, w] of this.control) {
        clearTimeout(w.timer);
        w.reject(err);
        this.control.delete(id);
      }
      return;
    }
    for (const call of [...this.calls.values()]) {
      call.reject(err);
      void this.sendCancel(call.id).catch(() => undefined); // it may still run there
    }
  }

  private async sendCancel(id: string): Promise<boolean> {
    const reply = (await this.request("cancel_request", { request_id: id }, CLOSE_STEP_MS)) as unknown as CancelReply;
    return reply.found === true;
  }

  // The cancel travels on the control channel and may overtake its call_request: while the
  // runtime does not know the call yet, ask again.
  private async cancel(state: CallState<unknown>): Promise<void> {
    for (let attempt = 0; attempt < 100 && !state.settled; attempt++) {
      try {
        if (await this.sendCancel(state.id)) return;
      } catch {
        return; // dead or closed: the exit path rejects the call
      }
      await sleep(Math.min(10 * (attempt + 1), 100));
    }
  }

  private async receiveLoop(): Promise<void> {
    for await (const message of this.link.incoming()) this.onIncoming(message);
  }

  private onIncoming({ channel, frames, reset }: IncomingFrames): void {
    if (reset !== undefined) {
      this.onReset(channel, reset);
      return;
    }
    const r = decodeMessage(frames, this.verifyOptions);
    if (!r.ok) {
      this.dropped[r.reason]++;
      this.emitter.emit({ type: "dropped", reason: r.reason, channel });
      return;
    }
    try {
      this.dispatch(channel, r.message);
    } catch {
      // An authenticated but unusable message must not stop receiving.
    }
  }

  private dispatch(_channel: Channel, msg: WireMessage): void {
    const { header, content } = msg;
    const parent = header.parent_id;
    if (parent === null) return;
    const waiter = this.control.get(parent);
    if (waiter) {
      this.control.delete(parent);
      clearTimeout(waiter.timer);
      if (header.msg_type === "error") waiter.reject(toPythonError(content));
      else waiter.resolve(content);
      return;
    }
    const call = this.calls.get(parent);
    if (!call) return; // late reply to a call that timed out: nothing waits for it
    if (header.version !== PROTOCOL_VERSION && Number(String(header.version).split(".")[0]) !== PROTOCOL_MAJOR) {
      call.reject(new ProtocolError(`reply speaks protocol ${header.version}`, { context: { remoteCode: "unsupported_version" } }));
      return;
    }
    let decoded: Record<string, unknown>;
    if (isPlain(msg)) {
      decoded = content; // no placeholder, nothing too deep, no tensor: the walk would copy it
    } else {
      try {
        decoded = decodeTensors(content, checkDescriptors(header.buffers, msg.buffers), msg.buffers) as Record<string, unknown>;
      } catch (err) {
        call.reject(err);
        return;
      }
    }
    switch (header.msg_type) {
      case "event":
        call.event({ type: String(decoded.type), seq: Number(decoded.seq), data: (decoded.data ?? {}) as Record<string, unknown> });
        break;
      case "result":
        call.resolve(decoded.value);
        break;
      case "error":
        call.reject(decoded.ename === "MessageTooLarge" ? tooLargeReply(decoded, call.method) : toPythonError(decoded, { method: call.method }));
        break;
      case "cancelled":
        call.reject(new CancelledError(`${call.method} was cancelled (${String(decoded.reason)})`, { context: { reason: decoded.reason, method: call.method } }));
        break;
      default:
        break; // unknown message types from a newer minor version are ignored
    }
  }

  private async onExit(): Promise<void> {
    const proc = this.proc as RuntimeProcess;
    // Give stderr a moment to drain so the error carries the runtime's last lines.
    await Promise.race([proc.closed, sleep(50)]);
    const info = proc.exitInfo ?? { code: null, signal: null };
    const expected = this.closing !== undefined;
    const exitErr = expected ? new ClosedError("the runtime was closed") : proc.exitedError();
    this.dead ??= exitErr;
    for (const call of [...this.calls.values()]) {
      call.reject(this.aborted.has(call.id) ? new CancelledError(`${call.method} was cancelled (the runtime is gone)`, { cause: exitErr }) : exitErr);
    }
    for (const [id, w] of this.control) {
      clearTimeout(w.timer);
      w.reject(exitErr);
      this.control.delete(id);
    }
    this.link.close();
    this.emitter.emit({ type: "exit", code: info.code, signal: info.signal, expected });
    if (!expected) {
      this.emitter.end();
      await proc.removeDir();
    }
  }

  private onPythoniaExit(): void {
    const py = this.pythonia as PythoniaTransport;
    const info = py.exitInfo ?? { code: null, signal: null };
    const expected = this.closing !== undefined;
    const exitErr = expected ? new ClosedError("the runtime was closed") : py.exitedError();
    this.dead ??= exitErr;
    this.rejectAll(exitErr);
    this.link.close();
    this.emitter.emit({ type: "exit", code: info.code, signal: info.signal, expected });
    if (!expected) this.emitter.end();
  }

  private rejectAll(err: NearposError, control = true): void {
    for (const call of [...this.calls.values()]) {
      call.reject(this.aborted.has(call.id) ? new CancelledError(`${call.method} was cancelled (the runtime is gone)`, { cause: err }) : err);
    }
    if (!control) return; // (pending control requests, the watch's heartbeat among them, time out by themselves)
    for (const [id, w] of this.control) {
      clearTimeout(w.timer);
      w.reject(err);
      this.control.delete(id);
    }
  }

  private async doClose(): Promise<void> {
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    const py = this.pythonia;
    if (py && py.exitInfo === undefined) {
      // The Python process is shared by every pythonia runtime: stop this runtime's server
      // (shutdown_request), then the transport releases the process (the last one ends it).
      let stopped = false;
      try {
        await this.request("shutdown_request", {}, CLOSE_STEP_MS);
        stopped = await Promise.race([py.stopped.then(() => true), sleep(CLOSE_STEP_MS).then(() => false)]);
      } catch {
        // close_server below cancels whatever still runs.
      }
      const closed = new ClosedError();
      this.rejectAll(closed);
      this.link.close();
      this.dead ??= closed;
      await Promise.race([py.released, sleep(CLOSE_STEP_MS)]);
      this.emitter.emit({ type: "exit", code: stopped ? 0 : null, signal: null, expected: true });
      this.emitter.end();
      return;
    }
    const proc = this.proc;
    if (proc?.alive && this.unreachable) {
      // Stalled (stopped, hung): it would not answer, and a stopped process does not even
      // take SIGTERM. SIGKILL is delivered regardless.
      proc.kill("SIGKILL");
      await proc.waitExit(CLOSE_STEP_MS);
    } else if (proc?.alive) {
      try {
        await this.request("shutdown_request", {}, CLOSE_STEP_MS) as unknown as ShutdownReply;
      } catch {
        // Not answering is what SIGTERM is for.
      }
      if (!(await proc.waitExit(CLOSE_STEP_MS))) {
        proc.child.stdin?.end();
        if (!(await proc.waitExit(CLOSE_STEP_MS))) {
          proc.kill("SIGTERM");
          if (!(await proc.waitExit(CLOSE_STEP_MS))) {
            proc.kill("SIGKILL");
            await proc.waitExit(CLOSE_STEP_MS);
          }
        }
      }
    }
    const closed = new ClosedError();
    for (const call of [...this.calls.values()]) call.reject(closed);
    for (const [id, w] of this.control) {
      clearTimeout(w.timer);
      w.reject(closed);
      this.control.delete(id);
    }
    this.link.close();
    this.dead ??= closed;
    if (proc) await proc.removeDir();
    this.emitter.end();
  }
}

// The runtime's answer instead of a result or event larger than this client accepts.
function tooLargeReply(content: Record<string, unknown>, method: string): MessageTooLargeError {
  const bytes = Number(content.nbytes);
  const limit = Number(content.max_message_bytes);
  return new MessageTooLargeError("reply", bytes, limit, String(content.evalue ?? `a reply of ${method} was too large`), { context: { method } });
}

function toPythonError(content: Record<string, unknown>, context: Record<string, unknown> = {}): PythonError {
  const c = content as Partial<ErrorContent>;
  return new PythonError(String(c.ename ?? "Error"), String(c.evalue ?? ""), Array.isArray(c.traceback) ? c.traceback.map(String) : [], {
    ...(typeof c.code === "string" ? { remoteCode: c.code } : {}),
    context,
  });
}

