/**
 * Routes each verified message from the runtime to what waits for it: a control request's
 * reply, or a call's event, result, error or cancellation.
 * @internal
 */
import { CancelledError, MessageTooLargeError, ProtocolError, PythonError } from "../errors.ts";
import type { ErrorContent, RuntimeEvent } from "../protocol/messages.ts";
import { checkDescriptors, decodeTensors, isPlain } from "../protocol/tensors.ts";
import { PROTOCOL_MAJOR, PROTOCOL_VERSION } from "../protocol/version.ts";
import type { WireMessage } from "../protocol/wire.ts";
import type { CallState } from "./call.ts";
import type { Pending } from "./pending.ts";

/** Hands `msg` to whatever waits for its parent; a message nothing waits for is ignored. */
export function dispatch(pending: Pending, msg: WireMessage): void {
  const { header, content } = msg;
  const parent = header.parent_id;
  if (parent === null) return;
  const waiter = pending.takeControl(parent);
  if (waiter) {
    if (header.msg_type === "error") waiter.reject(toPythonError(content));
    else waiter.resolve(content);
    return;
  }
  const call = pending.calls.get(parent);
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
  deliver(call, header.msg_type, decoded);
}

function deliver(call: CallState<unknown>, msgType: string, decoded: Record<string, unknown>): void {
  switch (msgType) {
    case "event":
      call.event({ type: String(decoded.type), seq: Number(decoded.seq), data: (decoded.data ?? {}) as Record<string, unknown> } as RuntimeEvent);
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

// The runtime's answer instead of a result or event larger than this client accepts.
function tooLargeReply(content: Record<string, unknown>, method: string): MessageTooLargeError {
  const bytes = Number(content.nbytes);
  const limit = Number(content.max_message_bytes);
  return new MessageTooLargeError("reply", bytes, limit, String(content.evalue ?? `a reply of ${method} was too large`), { context: { method } });
}

/** The PythonError of an `error` message's content. */
export function toPythonError(content: Record<string, unknown>, context: Record<string, unknown> = {}): PythonError {
  const c = content as Partial<ErrorContent>;
  return new PythonError(String(c.ename ?? "Error"), String(c.evalue ?? ""), Array.isArray(c.traceback) ? c.traceback.map(String) : [], {
    ...(typeof c.code === "string" ? { remoteCode: c.code } : {}),
    context,
  });
}
