import type { JsonValue } from "./tensors.ts";
import type { Tensor } from "../tensor.ts";

/** A device the runtime can use (`hello_reply.devices`). */
export interface DeviceInfo {
  type: "cpu" | "cuda" | "mps" | (string & {});
  index: number;
  name: string;
  /** Total memory in bytes (accelerators). */
  memory_bytes?: number;
}

/** A method of the runtime's registry, with the JSON Schema its params are checked against. */
export interface MethodInfo {
  name: string;
  description: string;
  params_schema: Record<string, unknown>;
}

/** A plugin loaded by the runtime (docs/plugins.md). */
export interface PluginInfo {
  name: string;
  version: string;
  description: string;
  module: string;
  config_schema: Record<string, unknown>;
  [extra: string]: unknown;
}

/** `hello_reply` content: who the runtime is and what it offers. */
export interface HelloReply {
  protocol_version: string;
  runtime_version: string;
  python: string;
  torch: string;
  platform: string;
  pid: number;
  session: string;
  signed_buffers: boolean;
  max_message_bytes: number;
  devices: DeviceInfo[];
  methods: MethodInfo[];
  plugins: PluginInfo[];
  plugin_errors: { name: string; error: string }[];
  [extra: string]: unknown;
}

/** `heartbeat_reply` content. */
export interface HeartbeatReply {
  /** The runtime's clock, ISO 8601. */
  time: string;
  /** msg_id of each call in progress. */
  running: string[];
  /** Messages the runtime dropped, per reason, since it started. */
  dropped: { malformed: number; oversized: number; bad_signature: number; replayed: number };
  [extra: string]: unknown;
}

/** `cancel_reply` content. */
export interface CancelReply {
  found: boolean;
}

/** `shutdown_reply` content. */
export interface ShutdownReply {
  cancelled: string[];
}

/** `error` content. */
export interface ErrorContent {
  ename: string;
  evalue: string;
  traceback: string[];
  code?: string;
}

/** Event data may hold tensors. */
export type EventData = { [key: string]: JsonValue | Tensor | EventData | unknown };

interface EventBase<T extends string, D> {
  /** Event type (namespaced, e.g. `step`). */
  type: T;
  /** Position of this event in its call: 0, 1, 2 ... */
  seq: number;
  data: D;
}

/** `tick` from `sleep`. */
export type TickEvent = EventBase<"tick", { i: number }>;
/** `step` from `train`. */
export type StepEvent = EventBase<
  "step",
  { step: number; epoch: number; loss: number; lr: number; samples_per_s: number; diagnostics: Record<string, unknown> }
>;
/** `epoch` from `train`. */
export type EpochEvent = EventBase<"epoch", { epoch: number; step: number; loss: number }>;
/** `eval` from `train` and `evaluate`. */
export type EvalEvent = EventBase<
  "eval",
  { step: number; metrics: { coarse: Record<string, number>; fine?: Record<string, number> } }
>;
/** `checkpoint` from `train`. */
export type CheckpointEvent = EventBase<"checkpoint", { step: number; path: string }>;
/** `warning` from any method. */
export type WarningEvent = EventBase<"warning", { message: string }>;
/** Any event type this client does not know; passed on untouched. */
export type OtherEvent = EventBase<string & {}, Record<string, unknown>>;

/** An event of a running call, discriminated on `type`. */
export type RuntimeEvent = TickEvent | StepEvent | EpochEvent | EvalEvent | CheckpointEvent | WarningEvent | OtherEvent;
