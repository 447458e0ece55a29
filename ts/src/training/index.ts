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

