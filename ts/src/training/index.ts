/**
 * Training, embedding and evaluation from TypeScript (docs/training.md).
 *
 * Params types are generated from the runtime's pydantic schemas (ts/src/generated/);
 * every call is validated against the same schema before anything is sent.
 *
 * @example
 * ```ts
 * await using rt = await Runtime.start();
 * const run = train(rt, { data: { kind: "mnist" }, model: { kind: "mlp" }, steps: 200 });
 * for await (const ev of run.events) if (ev.type === "eval") console.log(ev.data.metrics.coarse);
 * const { model, metrics } = await run.result;
 * ```
 */
import type { Runtime } from "../runtime/runtime.ts";
import type { Tensor } from "../tensor.ts";
import type {
  CheckpointLoadParams,
  CheckpointSaveParams,
  EmbedParams,
  EvaluateParams,
  TrainConfig,
} from "../generated/training.ts";

export type * from "../generated/training.ts";

/** Metric name -> value: `recall@K`, `map@r`, `r_precision`, `nmi`, `queries`, `queries_without_match`. */
export type MetricValues = Record<string, number>;

/** Metrics on the coarse (class) labels, and on the fine labels when the data has them. */
export interface Metrics {
  coarse: MetricValues;
  fine?: MetricValues;
}

/** One evaluation during training. */
export interface HistoryEntry {
  step: number;
  metrics: Metrics;
}

/** What `train` returns. */
export interface TrainResult {
  /** Handle of the trained model in the runtime (free it with `rt.call("release", {id})`). */
  model: string;
  /** Final evaluation. */
  metrics: Metrics;
  /** Every evaluation, in step order. */
  history: HistoryEntry[];
  /** Loss of every step. */
  losses: number[];
  /** Steps run in total (resumed ones included). */
  steps: number;
  /** Wall time of the training loop in this call, evaluation excluded (s). */
  elapsed_s: number;
  /** Training samples per second in this call. */
  samples_per_s: number;
  /** Last checkpoint written, or null. */
  checkpoint: string | null;
  /** Device used ("cpu", "cuda:0" ...). */
  device: string;
  /** Seconds this run waited for other trainings of the runtime to finish (they run one at a time). */
  queued_s: number;
}

/**
 * `queued` event: the runtime is running other trainings (one at a time, in arrival order);
 * `ahead` runs come before this one, the running one included. Sent on arrival and whenever
 * the number drops; the run can be cancelled while it waits.
 */
export interface TrainQueuedEvent {
  type: "queued";
  seq: number;
  data: { ahead: number };
}
/** `step` event: after each `log_every`-th optimizer step (1-based). */
export interface TrainStepEvent {
  type: "step";
  seq: number;
  data: { step: number; epoch: number; loss: number; lr: number; samples_per_s: number; diagnostics: Record<string, number> };
}
/** `epoch` event: mean loss of the epoch just finished. */
export interface TrainEpochEvent {
  type: "epoch";
  seq: number;
  data: { epoch: number; step: number; loss: number };
}
/** `eval` event: metrics at a step. */
export interface TrainEvalEvent {
  type: "eval";
  seq: number;
  data: { step: number; metrics: Metrics };
}
/** `checkpoint` event: a checkpoint file was written. */
export interface TrainCheckpointEvent {
  type: "checkpoint";
  seq: number;
  data: { step: number; path: string };
}
/** `warning` event. */
export interface TrainWarningEvent {
  type: "warning";
  seq: number;
  data: { message: string };
}
/** Events of a training run, discriminated on `type`. */
export type TrainEvent = TrainQueuedEvent | TrainStepEvent | TrainEpochEvent | TrainEvalEvent | TrainCheckpointEvent | TrainWarningEvent;

/** A training run in flight. */
export interface TrainRun {
  /** msg_id of the call. */
  readonly id: string;
  /** Events in order; ends when the run ends. One consumer. */
  readonly events: AsyncIterable<TrainEvent>;
  /**
   * The result; rejects with CancelledError after an abort, PythonError on failure (code
   * `invalid_params`, naming the field, for a config mistake or a batch over the memory budget).
   */
  readonly result: Promise<TrainResult>;
}

/** Options of {@link train}. */
export interface TrainOptions {
  /** Aborting cancels the run between two steps; `result` then rejects with CancelledError. */
  signal?: AbortSignal;
  /** Called with each event as it arrives (in addition to `events`). */
  onEvent?: (event: TrainEvent) => void;
}

const TRAIN_EVENTS = new Set(["queued", "step", "epoch", "eval", "checkpoint", "warning"]);

async function* onlyTrainEvents(events: AsyncIterable<{ type: string }>): AsyncIterable<TrainEvent> {
  for await (const ev of events) if (TRAIN_EVENTS.has(ev.type)) yield ev as unknown as TrainEvent;
}

/**
 * Starts a training run.
 * @param rt - a started Runtime
 * @param config - the training configuration (validated before anything is sent)
 * @returns the run: `events` and `result`
 * @throws ValidationError naming the field when the config breaks the schema
 */
export function train(rt: Runtime, config: TrainConfig, options: TrainOptions = {}): TrainRun {
  const onEvent = options.onEvent;
  const call = rt.stream<TrainResult>("train", config as unknown as Record<string, unknown>, {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(onEvent ? { onEvent: (ev) => TRAIN_EVENTS.has(ev.type) && onEvent(ev as unknown as TrainEvent) } : {}),
  });
  return { id: call.id, events: onlyTrainEvents(call.events), result: call.result };
}

/** What `embed` returns. */
export interface EmbedResult {
  /** N x d float32. */
  embeddings: Tensor;
  /** N int64. */
  labels: Tensor;
  /** N int64, when the data has fine labels. */
  fine_labels?: Tensor;
}

/** Embeds a split of a data set with a model. */
export function embed(rt: Runtime, params: EmbedParams, options: { signal?: AbortSignal } = {}): Promise<EmbedResult> {
  return rt.call<EmbedResult>("embed", params as unknown as Record<string, unknown>, options);
}

/** What `evaluate` returns. */
export interface EvaluateResult {
  metrics: Metrics;
  labels: Tensor;
  fine_labels?: Tensor;
  /** N x 2 float32 PCA projection, when `projection: "pca"`. */
  projection?: Tensor;
}

/** Evaluates a model on data, or given embeddings, with the retrieval metrics. */
export function evaluate(rt: Runtime, params: EvaluateParams, options: { signal?: AbortSignal } = {}): Promise<EvaluateResult> {
  return rt.call<EvaluateResult>("evaluate", params as unknown as Record<string, unknown>, options);
}

/** Writes a model to a checkpoint file (atomically). */
export function saveCheckpoint(rt: Runtime, params: CheckpointSaveParams): Promise<{ path: string }> {
  return rt.call<{ path: string }>("checkpoint_save", params as unknown as Record<string, unknown>);
}

/** Loads a model from a checkpoint file; returns its handle and model config. */
export function loadCheckpoint(rt: Runtime, params: CheckpointLoadParams): Promise<{ model: string; model_config: Record<string, unknown> }> {
  return rt.call("checkpoint_load", params as unknown as Record<string, unknown>);
}
