/**
 * The runtime handle: its public surface (start, connect, calls, typed methods, events,
 * close). The parts live beside it: start.ts (what a handle is built from), pending.ts and
 * dispatch.ts (what waits for replies, and routing them), liveness.ts (the heartbeat
 * watch), shutdown.ts (stopping), typed.ts (narrowing events to a method's types).
 */
import {
  CancelledError,
  ClosedError,
  ErrorCode,
  MessageTooLargeError,
  NearposError,
  ProtocolError,
  RuntimeExitedError,
  RuntimeUnreachableError,
  StartError,
  TimeoutError,
  ValidationError,
} from "../errors.ts";
import {
  EVALUATE_EVENT_TYPES,
  TRAIN_EVENT_TYPES,
  type CheckpointLoadParams,
  type CheckpointLoadResult,
  type CheckpointSaveParams,
  type CheckpointSaveResult,
  type EmbedParams,
  type EmbedResult,
  type EvaluateEvent,
  type EvaluateParams,
  type EvaluateResult,
  type LossParams,
  type LossResult,
  type MineParams,
  type MineResult,
  type TrainConfig,
  type TrainEvent,
  type TrainResult,
} from "../generated/training.ts";
import type { CancelReply, HeartbeatReply, HelloReply, PluginInfo, RuntimeEvent } from "../protocol/messages.ts";
import { ReplayGuard } from "../protocol/replay.ts";
import { encodeTensors } from "../protocol/tensors.ts";
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
import type { Channel, Endpoints, IncomingFrames, OutgoingFrame, Transport, TransportFactory } from "../transport/transport.ts";
import type { PythoniaTransport } from "../transport/pythonia.ts";
import { type Call, CallState } from "./call.ts";
import { dispatch } from "./dispatch.ts";
import { LifecycleEmitter, type RuntimeLifecycleEvent } from "./emitter.ts";
import { Watch } from "./liveness.ts";
import { RuntimeOptionsSchema, type CallOptions, type ConnectOptions, type RuntimeOptions } from "./options.ts";
import { Pending } from "./pending.ts";
import { sleep, type RuntimeProcess } from "./process.ts";
import { CLOSE_STEP_MS, stopProcess, stopPythoniaServer } from "./shutdown.ts";
import { chooseTransport, connectParts, pythoniaLaunch, spawnLaunch, type Launch, type Parts } from "./start.ts";
import { narrowCall, narrowOptions } from "./typed.ts";
import { PluginChecks } from "./plugin-checks.ts";
import { ParamsValidator, fromZodError } from "./validate.ts";

const CLIENT_NAME = "nearpos-ts 0.1.0";

/** The transports a runtime can use (see {@link RuntimeOptions.transport}). */
export type TransportName = "zeromq" | "pythonia";

/** A training run in flight: its events (those of {@link TrainEvent}) and its result. */
export type TrainRun = Call<TrainResult, TrainEvent>;

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
  private readonly proc: RuntimeProcess | undefined;
  private readonly pythonia: PythoniaTransport | undefined;
  private readonly endpointsInfo: Endpoints;
  private readonly emitter: LifecycleEmitter;
  private readonly maxMessageBytes: number;
  private readonly verifyOptions: VerifyOptions;
  private readonly waiting = new Pending();
  private validator = new ParamsValidator([]);
  private dead: NearposError | undefined;
  private closing: Promise<void> | undefined;
  private watch: Watch | undefined;
  /** Set while heartbeats go unanswered; cleared when the runtime answers again. */
  private unreachable: RuntimeUnreachableError | undefined;
  private unreachableSince = 0;

  private constructor(parts: Parts) {
    this.link = parts.transport;
    this.key = parts.key;
    this.signedBuffers = parts.signedBuffers;
    this.maxMessageBytes = parts.maxMessageBytes;
    this.proc = parts.proc;
    this.pythonia = parts.pythonia;
    this.endpointsInfo = parts.endpoints;
    this.emitter = parts.emitter;
    this.verifyOptions = { key: this.key, signedBuffers: this.signedBuffers, maxMessageBytes: this.maxMessageBytes, replay: new ReplayGuard() };
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
   * @throws ValidationError for bad options; StartError when the interpreter cannot run the
   *   runtime (what it lacks, the command that fixes it), when the process exits during start
   *   (reason "exited": exit code and stderr tail), for `transport: "zeromq"` where its native
   *   addon cannot load, or when pythonia cannot run the interpreter; TimeoutError after
   *   `startTimeoutMs`
   */
  static async start(options: RuntimeOptions = {}): Promise<Runtime> {
    const parsed = RuntimeOptionsSchema.safeParse(options);
    if (!parsed.success) throw fromZodError(parsed.error, "options");
    const opts = parsed.data;
    const deadline = Date.now() + opts.startTimeoutMs;
    const emitter = new LifecycleEmitter();
    if (opts.onLog) emitter.on("log", opts.onLog);
    const { zeromq, fallback } = await chooseTransport(opts);
    if (fallback) emitter.emit({ type: "log", stream: "stderr", line: `nearpos warning: ${fallback}` });
    let rt: Runtime | undefined;
    const launch = zeromq
      ? await spawnLaunch(opts, emitter, deadline, zeromq)
      : await pythoniaLaunch(opts, emitter, deadline, () => (rt ? rt.waiting.size : 1));
    rt = await Runtime.finishStart(launch, deadline);
    rt.startWatch(opts.heartbeatIntervalMs, opts.heartbeatMisses);
    // After start resolves, so that `rt.on("warning", ...)` right after it sees it.
    if (fallback) setImmediate(() => emitter.emit({ type: "warning", message: fallback }));
    return rt;
  }

  /**
   * The common end of both start paths: build the Runtime and complete the hello
   * handshake; on any failure close what was built (or abandon what was not) and throw.
   */
  private static async finishStart(launch: Launch, deadline: number): Promise<Runtime> {
    let rt: Runtime | undefined;
    try {
      rt = new Runtime(await launch.build());
      await rt.handshake(Math.max(1, deadline - Date.now()));
      return rt;
    } catch (err) {
      if (rt) await rt.close();
      else await launch.abandon();
      // Died after its connection file, before answering hello: still a failed start.
      if (err instanceof RuntimeExitedError && launch.exitedError) throw launch.exitedError(err);
      if (err instanceof NearposError) throw err;
      throw new StartError(launch.failure, { cause: err });
    }
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
   * @param transportFactory - @internal a transport other than ZeroMQ (tests)
   * @throws ValidationError for a non-local endpoint without `allowRemote: true`
   */
  static async connect(options: ConnectOptions, transportFactory?: TransportFactory): Promise<Runtime> {
    const { parts, opts } = await connectParts(options, transportFactory);
    const rt = new Runtime(parts);
    try {
      await rt.handshake(opts.timeoutMs);
    } catch (err) {
      await rt.close();
      throw err;
    }
    rt.startWatch(opts.heartbeatIntervalMs, opts.heartbeatMisses);
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

  /** The transport in use: `"zeromq"`, `"pythonia"` (the fallback), or a custom factory's name. */
  get transport(): TransportName | (string & {}) {
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
    return this.waiting.calls.size;
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
  call<T = unknown>(method: string, params: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
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
  stream<T = unknown>(method: string, params: Record<string, unknown> = {}, options: CallOptions = {}): Call<T> {
    if (this.dead) throw this.dead;
    if (this.closing) throw new ClosedError();
    if (this.unreachable) throw this.unreachable;
    if (options.timeoutMs !== undefined && !(options.timeoutMs > 0)) {
      throw new ValidationError("timeoutMs", `must be a positive number of milliseconds, got ${options.timeoutMs}`);
    }
    const id = newId();
    const frames = this.callFrames(id, method, params);
    if (options.signal?.aborted) {
      const state = new CallState<T>(id, method, options.onEvent);
      state.reject(new CancelledError("the call was aborted before it was sent", { cause: options.signal.reason, context: { method } }));
      return state;
    }
    const state = new CallState<T>(id, method, options.onEvent, this.waiting.forget);
    this.waiting.calls.set(id, state as unknown as CallState<unknown>);
    this.link.send("request", signFrames(frames, this.key, this.signedBuffers)).catch((err: unknown) => {
      state.reject(this.dead ?? new NearposError(ErrorCode.protocolError, "sending the call failed", { cause: err }));
    });
    this.track(state as unknown as CallState<unknown>, options);
    return state;
  }

  /** The frames of a call_request, checked: method known, params valid, size within the limit. */
  private callFrames(id: string, method: string, params: Record<string, unknown>): OutgoingFrame[] {
    this.validator.checkMethod(method);
    const encoded = encodeTensors(params);
    this.validator.check(method, encoded.json);
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
    return frames;
  }

  /** Cancels a sent call when its signal aborts or its timeout passes. */
  private track(state: CallState<unknown>, options: CallOptions): void {
    const { id, method } = state;
    if (options.signal) {
      const signal = options.signal;
      const onAbort = (): void => {
        this.waiting.aborted.add(id);
        void this.cancel(state);
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
  }

  /** Liveness and counters of the runtime (control channel: never queued behind calls). */
  async heartbeat(timeoutMs = 5000): Promise<HeartbeatReply> {
    return (await this.request("heartbeat_request", {}, timeoutMs)) as unknown as HeartbeatReply;
  }

  // ------------------------------------------------------------ typed methods

  /** Mines tuples with a sampler (the `mine` method). */
  mine(params: MineParams, options: CallOptions = {}): Promise<MineResult> {
    return this.call<MineResult>("mine", asParams({ config: {}, ...params }), options);
  }

  /** Computes a loss with a sampler's tuples (the `loss` method). */
  loss(params: LossParams, options: CallOptions = {}): Promise<LossResult> {
    return this.call<LossResult>("loss", asParams({ loss_config: {}, config: {}, ...params }), options);
  }

  /**
   * Starts a training run (the `train` method; see docs/training.md).
   * @param config - validated against the runtime's schema before anything is sent
   * @returns the run: `events` (queued, step, epoch, eval, checkpoint, warning) and `result`,
   *   which rejects with CancelledError after an abort, PythonError on failure (code
   *   `invalid_params`, naming the field, for a config mistake or a batch over the memory budget)
   * @throws ValidationError naming the field when the config breaks the schema
   * @example
   * ```ts
   * const run = rt.train({ data: { kind: "mnist" }, model: { kind: "mlp" }, steps: 200 });
   * for await (const ev of run.events) if (ev.type === "eval") console.log(ev.data.metrics.coarse);
   * const { model, metrics } = await run.result;
   * ```
   */
  train(config: TrainConfig, options: CallOptions<TrainEvent> = {}): TrainRun {
    const call = this.stream("train", asParams(config), narrowOptions(options, TRAIN_EVENT_TYPES));
    return narrowCall<TrainResult, TrainEvent>(call, TRAIN_EVENT_TYPES);
  }

  /** Embeds a split of a data set with a trained model (the `embed` method). */
  embed(params: EmbedParams, options: CallOptions = {}): Promise<EmbedResult> {
    return this.call<EmbedResult>("embed", asParams(params), options);
  }

  /** Retrieval metrics (Recall@K, MAP@R, R-Precision, NMI) of a model or of given embeddings. */
  evaluate(params: EvaluateParams, options: CallOptions<EvaluateEvent> = {}): Promise<EvaluateResult> {
    return this.call<EvaluateResult>("evaluate", asParams(params), narrowOptions(options, EVALUATE_EVENT_TYPES));
  }

  /** Writes a model to a checkpoint file, atomically (the `checkpoint_save` method). */
  saveCheckpoint(params: CheckpointSaveParams, options: CallOptions = {}): Promise<CheckpointSaveResult> {
    return this.call<CheckpointSaveResult>("checkpoint_save", asParams(params), options);
  }

  /** Loads a checkpoint (weights only); returns a model handle (the `checkpoint_load` method). */
  loadCheckpoint(params: CheckpointLoadParams, options: CallOptions = {}): Promise<CheckpointLoadResult> {
    return this.call<CheckpointLoadResult>("checkpoint_load", asParams(params), options);
  }

  // ------------------------------------------------------------ lifecycle

  /**
   * Subscribes to runtime events (`log`, `exit`, `dropped`, `warning`, `unreachable`, `reachable`).
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

  // ------------------------------------------------------------ internals

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
    this.validator = new ParamsValidator(hello.methods ?? [], new PluginChecks(hello.plugins ?? []));
  }

  /** A control-channel request and its reply (unref: a heartbeat's timer never keeps Node alive). */
  private async request(msgType: string, content: Record<string, unknown>, timeoutMs: number, unref = false): Promise<Record<string, unknown>> {
    if (this.dead) throw this.dead;
    if (this.link.closed) throw new ClosedError();
    const header = makeHeader({ msgType, session: this.session, signedBuffers: this.signedBuffers });
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.control.delete(header.msg_id);
        reject(new TimeoutError(`no ${msgType.replace("_request", "_reply")} within ${timeoutMs} ms`, { context: { msgType, timeoutMs } }));
      }, timeoutMs);
      if (unref) timer.unref();
      this.waiting.control.set(header.msg_id, { resolve, reject, timer });
    });
    this.link.send("control", signFrames(frameMessage({ header, content, buffers: [] }), this.key, this.signedBuffers)).catch((err: unknown) => {
      this.waiting.takeControl(header.msg_id)?.reject(this.dead ?? new ClosedError("sending on the control channel failed", { cause: err }));
    });
    return reply;
  }

  private startWatch(intervalMs: number, misses: number): void {
    this.watch = new Watch(
      {
        heartbeat: (ms) => this.request("heartbeat_request", {}, ms, true),
        ended: () => this.dead !== undefined || this.closing !== undefined,
        onUnreachable: (missed) => this.onUnreachable(intervalMs, missed),
        onReachable: () => this.onReachable(),
      },
      intervalMs,
      misses,
    );
  }

  private onUnreachable(intervalMs: number, misses: number): void {
    const err = new RuntimeUnreachableError(this.endpointsInfo, intervalMs, misses);
    this.unreachable = err;
    this.unreachableSince = Date.now();
    // Calls the runtime may still be running: cancelled there once it answers again.
    for (const id of this.waiting.calls.keys()) this.waiting.lost.add(id);
    // (pending control requests, the watch's heartbeat among them, time out by themselves)
    this.waiting.rejectAll(err, false);
    this.emitter.emit({ type: "unreachable", missed: misses });
  }

  private onReachable(): void {
    this.unreachable = undefined;
    for (const id of this.waiting.lost) void this.sendCancel(id).catch(() => undefined);
    this.waiting.lost.clear();
    this.emitter.emit({ type: "reachable", afterMs: Date.now() - this.unreachableSince });
  }

  // The transport connected a channel anew (ZeroMQ cut it over a frame past our limit):
  // whatever was in flight on it will not be answered, so it must not wait for ever.
  private onReset(channel: Channel, why: string): void {
    const err = new ProtocolError(`the ${channel} channel was reset: ${why}; what was in flight on it is lost`, { context: { channel } });
    if (channel === "control") {
      this.waiting.rejectControl(err);
      return;
    }
    for (const call of [...this.waiting.calls.values()]) {
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
      dispatch(this.waiting, r.message);
    } catch {
      // An authenticated but unusable message must not stop receiving.
    }
  }

  /** Everything pending fails with `err`; the transport closes; `exit` is emitted. */
  private endWith(err: NearposError, exit: { code: number | null; signal: NodeJS.Signals | null }, expected: boolean): void {
    this.dead ??= err;
    this.waiting.rejectAll(err);
    this.link.close();
    this.emitter.emit({ type: "exit", code: exit.code, signal: exit.signal, expected });
  }

  private async onExit(): Promise<void> {
    const proc = this.proc as RuntimeProcess;
    // Give stderr a moment to drain so the error carries the runtime's last lines.
    await Promise.race([proc.closed, sleep(50)]);
    const expected = this.closing !== undefined;
    this.endWith(expected ? new ClosedError("the runtime was closed") : proc.exitedError(), proc.exitInfo ?? { code: null, signal: null }, expected);
    if (!expected) {
      this.emitter.end();
      await proc.removeDir();
    }
  }

  private onPythoniaExit(): void {
    const py = this.pythonia as PythoniaTransport;
    const expected = this.closing !== undefined;
    this.endWith(expected ? new ClosedError("the runtime was closed") : py.exitedError(), py.exitInfo ?? { code: null, signal: null }, expected);
    if (!expected) this.emitter.end();
  }

  private async doClose(): Promise<void> {
    this.watch?.stop();
    const shutdown = (): Promise<unknown> => this.request("shutdown_request", {}, CLOSE_STEP_MS);
    const py = this.pythonia;
    if (py && py.exitInfo === undefined) {
      const stopped = await stopPythoniaServer(py, shutdown);
      const closed = new ClosedError();
      this.waiting.rejectAll(closed);
      this.link.close();
      this.dead ??= closed;
      await Promise.race([py.released, sleep(CLOSE_STEP_MS)]);
      this.emitter.emit({ type: "exit", code: stopped ? 0 : null, signal: null, expected: true });
      this.emitter.end();
      return;
    }
    const proc = this.proc;
    if (proc) await stopProcess(proc, shutdown, this.unreachable !== undefined);
    const closed = new ClosedError();
    this.waiting.rejectAll(closed);
    this.link.close();
    this.dead ??= closed;
    if (proc) await proc.removeDir();
    this.emitter.end();
  }
}

/** A typed params object as the untyped `call` takes it (the schema checks it before sending). */
function asParams(params: object): Record<string, unknown> {
  return params as Record<string, unknown>;
}
