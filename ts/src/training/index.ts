/**
 * Types of training, embedding, evaluation, mining and loss (docs/training.md): params,
 * results and events, generated from the runtime's pydantic schemas (ts/src/generated/).
 * Every call is validated against the same schema before anything is sent; the
 * {@link Runtime} methods (`rt.train`, `rt.embed`, `rt.evaluate` ...) take and return them.
 *
 * @example
 * ```ts
 * await using rt = await Runtime.start();
 * const run = rt.train({ data: { kind: "mnist" }, model: { kind: "mlp" }, steps: 200 });
 * for await (const ev of run.events) if (ev.type === "eval") console.log(ev.data.metrics.coarse);
 * const { model, metrics } = await run.result;
 * ```
 */
export type * from "../generated/training.ts";
export type { TrainRun } from "../runtime/runtime.ts";

import type { Runtime, TrainRun as Run } from "../runtime/runtime.ts";
import type { CallOptions } from "../runtime/options.ts";
import type { TrainConfig, TrainEvent } from "../generated/training.ts";

/**
 * `rt.train(config, options)`, for scripts written against the function form; not part of
 * the public API (ts/src/index.ts re-exports only the types of this module).
 * @internal
 */
export function train(rt: Runtime, config: TrainConfig, options: CallOptions<TrainEvent> = {}): Run {
  return rt.train(config, options);
}
