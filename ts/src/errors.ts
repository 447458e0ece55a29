/**
 * Machine-readable error codes. Tests and callers branch on `err.code`, never on messages.
 */
export const ErrorCode = {
  pythonError: "python_error",
  invalidParams: "invalid_params",
  unknownMethod: "unknown_method",
  runtimeExited: "runtime_exited",
  cancelled: "cancelled",
  timeout: "timeout",
  protocolError: "protocol_error",
  startFailed: "start_failed",
  invalidConfig: "invalid_config",
  closed: "closed",
  runtimeUnreachable: "runtime_unreachable",
  messageTooLarge: "message_too_large",
  internalError: "internal_error",
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options shared by every nearpos error. */
export interface NearposErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** Structured facts about the failure (method name, field path, exit code ...). */
  context?: Record<string, unknown>;
  /** What the user can do about it. */
  hint?: string;
}

/** Base class of every error thrown by nearpos. */
export class NearposError extends Error {
  readonly code: ErrorCode;
  readonly context: Record<string, unknown>;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: NearposErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = options.context ?? {};
    this.hint = options.hint;
  }

  /** A plain JSON form, for `--json` output and logs. */
  toJSON(): Record<string, unknown> {
    const cause = this.cause;
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      context: this.context,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(cause === undefined
        ? {}
        : { cause: cause instanceof NearposError ? cause.toJSON() : String(cause instanceof Error ? cause.message : cause) }),
    };
  }
}

const ENAME_CODES: Record<string, ErrorCode> = {
  InvalidParams: ErrorCode.invalidParams,
  UnknownMethod: ErrorCode.unknownMethod,
  // A call that reached the runtime after shutdown began never ran.
  RuntimeShuttingDown: ErrorCode.closed,
  ProtocolError: ErrorCode.protocolError,
  // The runtime failed while handling the message (a bug there); it kept serving.
  InternalError: ErrorCode.internalError,
};

/** An exception raised in the Python runtime, as `{ename, evalue, traceback}`. */
export class PythonError extends NearposError {
  readonly ename: string;
  readonly evalue: string;
  readonly traceback: string[];
  /** The runtime's own machine-readable code (`error.content.code`), if it sent one. */
  readonly remoteCode: string | undefined;

  constructor(ename: string, evalue: string, traceback: string[], options: NearposErrorOptions & { remoteCode?: string } = {}) {
    super(ENAME_CODES[ename] ?? ErrorCode.pythonError, `${ename}: ${evalue}`, {
      ...options,
      context: { ename, ...(options.remoteCode ? { remoteCode: options.remoteCode } : {}), ...options.context },
    });
    this.ename = ename;
    this.evalue = evalue;
    this.traceback = traceback;
    this.remoteCode = options.remoteCode;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), ename: this.ename, evalue: this.evalue, traceback: this.traceback };
  }
}

/** The runtime process exited (crash, kill, or an exit while calls were pending). */
export class RuntimeExitedError extends NearposError {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: string[];

  constructor(exitCode: number | null, signal: string | null, stderrTail: string[], options: NearposErrorOptions = {}) {
    const how = signal ? `killed by ${signal}` : `exited with code ${exitCode}`;
    const tail = stderrTail.length > 0 ? `\nlast stderr lines:\n${stderrTail.join("\n")}` : "";
    super(ErrorCode.runtimeExited, `the nearpos runtime ${how}${tail}`, {
      ...options,
      context: { exitCode, signal, ...options.context },
    });
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = stderrTail;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), exitCode: this.exitCode, signal: this.signal, stderrTail: this.stderrTail };
  }
}

/** The call was cancelled (AbortSignal, shutdown). */
export class CancelledError extends NearposError {
  constructor(message = "the call was cancelled", options: NearposErrorOptions = {}) {
    super(ErrorCode.cancelled, message, options);
  }
}

/** A deadline passed (call `timeoutMs`, start timeout). */
export class TimeoutError extends NearposError {
  constructor(message: string, options: NearposErrorOptions = {}) {
    super(ErrorCode.timeout, message, options);
  }
}

/** A peer broke the wire protocol (docs/protocol.md). */
export class ProtocolError extends NearposError {
  constructor(message: string, options: NearposErrorOptions = {}) {
    super(ErrorCode.protocolError, message, options);
  }
}

/** Why a runtime could not start (`StartError.reason`). */
export type StartFailure =
  /** The interpreter does not exist or cannot be executed. */
  | "python_not_found"
  /** The interpreter ran but is not Python 3.10 or newer (or not Python at all). */
  | "python_unusable"
  /** The interpreter did not answer the start-up check in time. */
  | "python_timeout"
  /** Python packages the runtime needs are missing (`missing` names them). */
  | "packages_missing"
  /** The installed runtime speaks another protocol major version. */
  | "protocol_mismatch"
  /** The installed runtime is another release than this package. */
  | "version_mismatch"
  /** The runtime process exited before it was ready (`exitCode`, `stderrTail`). */
  | "exited"
  /** Anything else (a transport that cannot load, a bad connection file ...). */
  | "other";

/** Options of {@link StartError}. */
export interface StartErrorOptions extends NearposErrorOptions {
  /** Why the start failed. Default `"other"`. */
  reason?: StartFailure;
  /** The interpreter that was used. */
  python?: string;
  /** What is missing in it (Python packages, the interpreter itself ...). */
  missing?: readonly string[];
  /** The interpreters looked at, in order, each with what was found. */
  tried?: readonly string[];
  /** The command that fixes it, e.g. `npx nearpos setup`. */
  fix?: string;
  /** For `reason: "exited"`: the runtime's exit code and last stderr lines. */
  exitCode?: number | null;
  signal?: string | null;
  stderrTail?: readonly string[];
}

/**
 * The runtime could not be started or connected. `reason` says why; `python` names the
 * interpreter, `missing` what it lacks, `tried` the interpreters looked at, and `fix` the
 * command that makes it work (also in `hint` and at the end of the message).
 */
export class StartError extends NearposError {
  readonly reason: StartFailure;
  readonly python: string | undefined;
  readonly missing: readonly string[];
  readonly tried: readonly string[];
  readonly fix: string | undefined;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stderrTail: readonly string[];

  constructor(message: string, options: StartErrorOptions = {}) {
    const { reason = "other", python, missing = [], tried = [], fix, exitCode = null, signal = null, stderrTail = [], ...base } = options;
    super(ErrorCode.startFailed, message, {
      ...(fix !== undefined && base.hint === undefined ? { hint: `run \`${fix}\`` } : {}),
      ...base,
      context: {
        reason,
        ...(python !== undefined ? { python } : {}),
        ...(missing.length > 0 ? { missing: [...missing] } : {}),
        ...(tried.length > 0 ? { tried: [...tried] } : {}),
        ...(fix !== undefined ? { fix } : {}),
        ...(reason === "exited" ? { exitCode, signal } : {}),
        ...base.context,
      },
    });
    this.reason = reason;
    this.python = python;
    this.missing = [...missing];
    this.tried = [...tried];
    this.fix = fix;
    this.exitCode = exitCode;
    this.signal = signal;
    this.stderrTail = [...stderrTail];
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), reason: this.reason, python: this.python, missing: this.missing, tried: this.tried, fix: this.fix, ...(this.reason === "exited" ? { exitCode: this.exitCode, signal: this.signal, stderrTail: this.stderrTail } : {}) };
  }
}

/** Bad options or params: names the field and, where known, the allowed values. */
export class ValidationError extends NearposError {
  readonly field: string;
  readonly allowed: readonly unknown[] | undefined;

  constructor(field: string, message: string, options: NearposErrorOptions & { allowed?: readonly unknown[] } = {}) {
    const allowedText = options.allowed ? ` (allowed: ${options.allowed.map((v) => JSON.stringify(v)).join(", ")})` : "";
    super(ErrorCode.invalidConfig, `${field}: ${message}${allowedText}`, {
      ...options,
      context: { field, ...(options.allowed ? { allowed: options.allowed } : {}), ...options.context },
    });
    this.field = field;
    this.allowed = options.allowed;
  }
}

/** A method name the runtime does not register; lists the known ones (from hello). */
export class UnknownMethodError extends NearposError {
  readonly method: string;
  readonly known: readonly string[];

  constructor(method: string, known: readonly string[]) {
    super(ErrorCode.unknownMethod, `unknown method "${method}"; the runtime has: ${known.join(", ")}`, {
      context: { method, known },
      hint: "method names come from rt.hello.methods",
    });
    this.method = method;
    this.known = known;
  }
}

/** The runtime handle was closed; no more calls can be made. */
export class ClosedError extends NearposError {
  constructor(message = "the runtime was closed", options: NearposErrorOptions = {}) {
    super(ErrorCode.closed, message, options);
  }
}

/**
 * A message larger than its receiver accepts (`max_message_bytes`, all frames together).
 * `direction` `"request"`: the call was refused before anything was sent (the runtime's
 * limit, from its hello). `"reply"`: the runtime would have sent more than this client
 * accepts, and sent this error instead (a result or event that large never travels).
 */
export class MessageTooLargeError extends NearposError {
  /** Size of the message, in bytes. */
  readonly bytes: number;
  /** The receiver's limit, in bytes. */
  readonly limit: number;
  /** `"request"`: refused here before sending; `"reply"`: refused by the runtime. */
  readonly direction: "request" | "reply";

  constructor(direction: "request" | "reply", bytes: number, limit: number, message: string, options: NearposErrorOptions = {}) {
    super(ErrorCode.messageTooLarge, message, {
      hint:
        direction === "request"
          ? "send less per call (split the tensors), or start the runtime with a larger maxMessageBytes"
          : "ask for less per call, or raise maxMessageBytes (both the runtime's and this client's)",
      ...options,
      context: { direction, bytes, limit, ...options.context },
    });
    this.bytes = bytes;
    this.limit = limit;
    this.direction = direction;
  }
}

/**
 * The runtime stopped answering heartbeats (`heartbeatMisses` in a row, each given
 * `heartbeatIntervalMs`): it died, is stopped or hung, or the network is down.
 * `context.endpoints` names the runtime. Pending calls reject with it, and so do new calls
 * while it lasts; the handle keeps probing and, once the runtime answers again, takes calls
 * again (the rejected ones are not resumed: the runtime is asked to cancel them).
 */
export class RuntimeUnreachableError extends NearposError {
  /** The endpoints of the runtime that stopped answering. */
  readonly endpoints: { request: string; control: string };

  constructor(endpoints: { request: string; control: string }, intervalMs: number, misses: number, options: NearposErrorOptions = {}) {
    super(
      ErrorCode.runtimeUnreachable,
      `the nearpos runtime at ${endpoints.request} / ${endpoints.control} did not answer ${misses} heartbeats in a row (${intervalMs} ms each)`,
      {
        hint: "check that the runtime process is still running and reachable; this handle recovers by itself once the runtime answers again (close() it to give up)",
        ...options,
        context: { endpoints: { ...endpoints }, heartbeatIntervalMs: intervalMs, heartbeatMisses: misses, ...options.context },
      },
    );
    this.endpoints = { ...endpoints };
  }
}
