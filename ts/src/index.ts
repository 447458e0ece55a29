/**
 * nearpos: drive a PyTorch runtime from TypeScript.
 *
 * This is the only public entry point; everything else is internal.
 * @packageDocumentation
 */
export { Runtime } from "./runtime/runtime.ts";
export type { TransportName } from "./runtime/runtime.ts";
export type { Call } from "./runtime/call.ts";
export type { RuntimeOptions, ConnectOptions, CallOptions } from "./runtime/options.ts";
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
export type { NearposErrorOptions, StartErrorOptions, StartFailure } from "./errors.ts";
export type * from "./training/index.ts";
export { PROTOCOL_VERSION } from "./protocol/version.ts";
export type { HelloReply, HeartbeatReply, MethodInfo, PluginInfo, DeviceInfo, RuntimeEvent, TickEvent, OtherEvent } from "./protocol/messages.ts";
