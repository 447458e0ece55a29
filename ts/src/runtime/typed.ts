/**
 * Narrowing a call's events to the types its method declares (generated from the runtime's
 * event schemas); events of other types are left out.
 * @internal
 */
import type { RuntimeEvent } from "../protocol/messages.ts";
import type { Call } from "./call.ts";
import type { CallOptions } from "./options.ts";

/** `options` whose `onEvent` sees only events of `types`. */
export function narrowOptions<E extends RuntimeEvent>(options: CallOptions<E>, types: readonly E["type"][]): CallOptions {
  const { onEvent, ...rest } = options;
  if (!onEvent) return rest;
  const known = new Set<string>(types);
  return { ...rest, onEvent: (ev) => known.has(ev.type) && onEvent(ev as E) };
}

async function* only<E>(events: AsyncIterable<RuntimeEvent>, known: ReadonlySet<string>): AsyncIterable<E> {
  for await (const ev of events) if (known.has(ev.type)) yield ev as E;
}

/** `call` with its result typed `T` and its events narrowed to `types`. */
export function narrowCall<T, E extends RuntimeEvent>(call: Call<unknown>, types: readonly E["type"][]): Call<T, E> {
  const known = new Set<string>(types);
  return {
    id: call.id,
    method: call.method,
    // Read on first use, as the call's own: a call whose events nobody reads buffers none.
    get events() {
      return only<E>(call.events, known);
    },
    result: call.result as Promise<T>,
  };
}
