/**
 * Shapes the benchmark runner exchanges with the runtime and writes to disk. What the runtime
 * returns and emits is the generated types' (ts/src/generated/training.ts), not redefined here.
 * @internal
 */
import type { EvaluateParams, Metrics, TrainEvent, TrainResult } from "../generated/training.ts";
import type { HelloReply } from "../protocol/messages.ts";
import type { Tensor } from "../tensor.ts";

// The runtime's own types, under their own names, for the runner's modules.
export type { HelloReply, Metrics, TrainResult };

/** 2-D projection of test embeddings. */
export interface Projection {
  /** x0, y0, x1, y1, ... */
  points: number[];
  labels: number[];
  fineLabels?: number[];
}

/** One split embedded by `embed`: N x d float32 embeddings with their labels. */
export interface Embedded {
  embeddings: Tensor;
  labels: Tensor;
  fineLabels?: Tensor;
}

/** Evaluation settings of `evaluate` on given embeddings (the train config's `eval` fields that apply). */
export type EvalOptions = Pick<EvaluateParams, "ks" | "nmi" | "chunk_size" | "seed">;

/** What the runner needs from a runtime. */
export interface BenchBackend {
  readonly hello: HelloReply;
  /**
   * Runs `train` with a suite's train params (the runtime's schema checks them before anything
   * is sent); `onEvent` sees its events in order.
   */
  train(params: Record<string, unknown>, onEvent: (ev: TrainEvent) => void): Promise<TrainResult>;
  /** Embeds the eval split of `data` with `model` and projects it to 2-D (PCA). */
  project(model: string, data: unknown, evalSplit: string): Promise<Projection>;
  /** Embeds the split `split` of `data` with `model` (the `embed` method). */
  embed(model: string, data: unknown, split: string): Promise<Embedded>;
  /** Retrieval metrics of given embeddings (the `evaluate` method, self-retrieval). */
  evaluateEmbeddings(e: Embedded, options: EvalOptions): Promise<Metrics>;
  /** Frees a model handle. */
  release(model: string): Promise<void>;
  close(): Promise<void>;
}

/** One finished run as written to runs/<id>/final.json. */
export interface RunRecord {
  id: string;
  lossId: string;
  sampler: string;
  baseline: boolean;
  seed: number;
  /** sha256 of the run's canonical train config (resume checks it). */
  config_sha256: string;
  metrics: Metrics;
  steps: number;
  elapsed_s: number;
  wall_s: number;
  samples_per_s: number;
  device: string;
  final_loss: number | null;
  /** Cross-validation: the held-out fold of this run. */
  fold?: number;
  /** Cross-validation: folds averaged into this record (a per-seed record made from per-fold runs). */
  folds?: number;
  /** Cross-validation: the selected step and its validation metrics. */
  best_step?: number | null;
  best_val_metrics?: Metrics | null;
  /**
   * Cross-validation: set on the record of the concatenated embedding (MLRC), whose metrics are
   * those of the F fold models' L2-normalised test embeddings joined along the feature axis.
   */
  concatenated?: { folds: number; fold_dim: number; dim: number };
}
