import type { TrainEvent } from "../generated/training.ts";

/** A device the runtime can use (`hello_reply.devices`). */
export interface DeviceInfo {
  type: "cpu" | "cuda" | "mps" | (string & {});
  index: number;
  name: string;
  /** Total memory in bytes (accelerators). */
  memory_bytes?: number;
}

/**
 * A method of the runtime's registry: the JSON Schema its params are checked against, and
 * those of its result and of each event type it emits (docs/protocol.md, Built-in methods).
 */
export interface MethodInfo {
  name: string;
  description: string;
  params_schema: Record<string, unknown>;
  /** JSON Schema of the result (optional: added within protocol 1.0). */
  result_schema?: Record<string, unknown>;
  /** Event type -> JSON Schema of its `data`. */
  event_schemas?: Record<string, Record<string, unknown>>;
}

/** A plugin loaded by the runtime (docs/plugins.md). */
export interface PluginInfo {
  name: string;
  version: string;
  description: string;
  module: string;
  config_schema: Record<string, unknown>;
  /** Loss names the plugin accepts; an entry ending in "*" is a prefix pattern ("pml:*"). */
  losses?: string[];
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

interface EventBase<T extends string, D> {
  /** Event type (namespaced, e.g. `step`). */
  type: T;
  /** Position of this event in its call: 0, 1, 2 ... */
  seq: number;
  data: D;
}

/** `tick` from `sleep`. */
export type TickEvent = EventBase<"tick", { i: number }>;
/** Any event type this client does not know; passed on untouched. */
export type OtherEvent = EventBase<string & {}, Record<string, unknown>>;

/**
 * An event of a running call, discriminated on `type`: those of `train` (which cover
 * `evaluate`'s `eval` and any method's `warning`; types generated from the runtime's
 * schemas), `tick`, and any other type.
 */
export type RuntimeEvent = TrainEvent | TickEvent | OtherEvent;
