/**
 * nearpos: drive a PyTorch runtime from TypeScript.
 *
 * This is the only public entry point; everything else is internal.
 * @packageDocumentation
 */
export { Runtime } from "./runtime/runtime.ts";
export type { MineParams, MineResult, LossParams, LossResult, CallWithEventsOptions } from "./runtime/runtime.ts";
export type { Call } from "./runtime/call.ts";
export { RuntimeOptionsSchema, ConnectOptionsSchema } from "./runtime/options.ts";
export type { RuntimeOptions, ResolvedRuntimeOptions, ConnectOptions, CallOptions } from "./runtime/options.ts";
export type {
  RuntimeLifecycleEvent,
  LogEvent,
  ExitEvent,
  DroppedEvent,
  RuntimeWarningEvent,
  UnreachableEvent,
  ReachableEvent,
} from "./runtime/emitter.ts";
export { Tensor, DTYPES, isDType, itemsize } from "./tensor.ts";
export type { DType, TensorData, TypedArrayFor } from "./tensor.ts";
export {
  ErrorCode,
  NearposError,
  PythonError,
  RuntimeExitedError,
  RuntimeUnreachableError,
  CancelledError,
  TimeoutError,
  ProtocolError,
  StartError,
  ValidationError,
  UnknownMethodError,
  ClosedError,
  MessageTooLargeError,
} from "./errors.ts";
export type { NearposErrorOptions } from "./errors.ts";
export { train, embed, evaluate, saveCheckpoint, loadCheckpoint } from "./training/index.ts";
export type * from "./training/index.ts";
export { PROTOCOL_VERSION } from "./protocol/version.ts";
export type {
  HelloReply,
  HeartbeatReply,
  MethodInfo,
  PluginInfo,
  DeviceInfo,
  RuntimeEvent,
  TickEvent,
  StepEvent,
  EpochEvent,
  EvalEvent,
  CheckpointEvent,
  WarningEvent,
  OtherEvent,
} from "./protocol/messages.ts";
export type { Transport, TransportFactory, TransportOptions, Channel, Endpoints, IncomingFrames } from "./transport/transport.ts";
export type { TransportName } from "./runtime/runtime.ts";
export type { DropCounts, DropReason } from "./protocol/wire.ts";
