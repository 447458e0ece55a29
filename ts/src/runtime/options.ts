import { z } from "zod";
import type { RuntimeEvent } from "../protocol/messages.ts";

const positiveInt = z.number().int().positive();

/** Liveness options shared by {@link RuntimeOptionsSchema} and {@link ConnectOptionsSchema}. */
const heartbeat = {
  /**
   * Milliseconds between liveness heartbeats on the control channel; each heartbeat is
   * also given this long to be answered. The runtime answers them even while busy with
   * calls. `0` turns the watch off (a stalled runtime then shows only as call timeouts).
   * Default 2000.
   */
  heartbeatIntervalMs: z.number().int().nonnegative().default(2000),
  /**
   * Consecutive unanswered heartbeats after which the runtime counts as unreachable: every
   * pending call rejects with `RuntimeUnreachableError` (code `runtime_unreachable`), and so
   * do new calls until it answers again (the handle keeps probing, then takes calls again
   * and emits `reachable`). Detection takes about `heartbeatIntervalMs * heartbeatMisses`.
   * Default 3.
   */
  heartbeatMisses: positiveInt.default(3),
};

/**
 * Options of {@link Runtime.start}. Parsed with zod; the CLI's `--python` is this schema's entry.
 */
export const RuntimeOptionsSchema = z
  .object({
    /**
     * Python interpreter that runs the runtime. Default: env `NEARPOS_PYTHON`; else the
     * interpreter `npx nearpos setup` recorded in the project's `.nearpos/setup.json`, else that
     * project's `.nearpos/venv` (looked for from the current folder upward, then from the
     * package's folder); else, inside a clone of the repository, its `.venv`; else `python3`.
     */
    python: z.string().min(1).optional(),
    /**
     * How messages travel: `zeromq` (the engine), `pythonia` (a pure-JavaScript fallback
     * over JSPyBridge, for platforms without a zeromq prebuild; one shared Python process per
     * Node process), or `auto`: zeromq when its native addon loads, else pythonia, with a
     * `warning` event (emitted just after `start` resolves) and a line to `onLog`. Default `auto`.
     */
    transport: z.enum(["zeromq", "pythonia", "auto"]).default("auto"),
    /** Endpoint kind: `ipc` (unix sockets in a private 0700 directory) or `tcp` (loopback). Default `ipc`. */
    address: z.enum(["ipc", "tcp"]).default("ipc"),
    /**
     * Whether signatures also cover tensor bytes. Default: the runtime's choice (false on
     * ipc, true on tcp). Hashing costs about as much as moving the bytes.
     */
    signedBuffers: z.boolean().optional(),
    /** Milliseconds to wait for the runtime to be ready (spawn, `import torch`, hello). Default 60000. */
    startTimeoutMs: positiveInt.default(60_000),
    /** Working directory of the runtime process. Default: this process's cwd. */
    cwd: z.string().min(1).optional(),
    /** Extra environment variables for the runtime (added to this process's environment). */
    env: z.record(z.string(), z.string()).optional(),
    /** Number of worker threads the runtime runs calls on (its `--workers`). Default: the runtime's. */
    workers: positiveInt.optional(),
    /**
     * Largest message, all frames together, in bytes, accepted by either side (the runtime's
     * `--max-message-bytes`). A call whose request or reply would be larger rejects with
     * `MessageTooLargeError` (code `message_too_large`) naming the size and the limit.
     * Default: 4 GiB.
     */
    maxMessageBytes: positiveInt.optional(),
    /**
     * Called with each line the runtime writes to stdout or stderr, from spawn on (lines
     * written before `start` resolves included). Later lines also arrive as `log` events.
     */
    onLog: z
      .custom<(event: { type: "log"; stream: "stdout" | "stderr"; line: string }) => void>((v) => typeof v === "function", "must be a function")
      .optional(),
    ...heartbeat,
  })
  .strict();

/** Options of {@link Runtime.start} (all optional; see {@link RuntimeOptionsSchema} for defaults). */
export type RuntimeOptions = z.input<typeof RuntimeOptionsSchema>;

/** {@link RuntimeOptions} after defaults were applied. */
export type ResolvedRuntimeOptions = z.infer<typeof RuntimeOptionsSchema>;

/** Options of {@link Runtime.connect}. Give `connectionFile`, or both endpoints. */
export const ConnectOptionsSchema = z
  .object({
    /** Path of a runtime's connection.json. */
    connectionFile: z.string().min(1).optional(),
    /** Request channel endpoint, e.g. `ipc:///tmp/x/request` or `tcp://127.0.0.1:5555`. */
    request: z.string().min(1).optional(),
    /** Control channel endpoint. */
    control: z.string().min(1).optional(),
    /** The session key: 64 hex digits, or 32 raw bytes. */
    key: z.union([z.string().regex(/^[0-9a-fA-F]{64}$/, "must be 64 hex digits"), z.instanceof(Uint8Array)]),
    /** Whether buffers are signed. Default: the connection file's value, else true for tcp. */
    signedBuffers: z.boolean().optional(),
    /** Allow endpoints other than ipc and loopback tcp. Default false. */
    allowRemote: z.boolean().default(false),
    /** Milliseconds to wait for the hello reply. Default 10000. */
    timeoutMs: positiveInt.default(10_000),
    /**
     * Largest message accepted from the runtime, all frames together, in bytes; told to the
     * runtime in hello, which then sends an error (`MessageTooLargeError`) instead of any
     * larger result or event. Default 4 GiB.
     */
    maxMessageBytes: positiveInt.optional(),
    ...heartbeat,
  })
  .strict();

/** Options of {@link Runtime.connect}. */
export type ConnectOptions = z.input<typeof ConnectOptionsSchema>;

/** {@link ConnectOptions} after defaults were applied. */
export type ResolvedConnectOptions = z.infer<typeof ConnectOptionsSchema>;

/**
 * Options of one call, the same for every method.
 * @typeParam E - the events the method emits (`TrainEvent` for `train` ...)
 */
export interface CallOptions<E = RuntimeEvent> {
  /** Aborting sends a cancel request; the call then rejects with CancelledError. */
  signal?: AbortSignal;
  /** Milliseconds before the call rejects with TimeoutError (a cancel is sent). Default: none. */
  timeoutMs?: number;
  /** Called with each event of the call, in order (a listener's exception is ignored). */
  onEvent?: (event: E) => void;
}
