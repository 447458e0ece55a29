/**
 * Shapes the benchmark runner exchanges with the runtime (docs/training.md) and writes to disk.
 * @internal
 */
import type { Tensor } from "../tensor.ts";

/** Metric name to value, e.g. {"recall@1": 0.93, "map@r": 0.71}. */
export type Metrics = Record<string, number>;

/** Metrics on the coarse (training) labels and on the fine labels (sub-cluster retention). */
export interface MetricSet {
  coarse: Metrics;
  fine?: Metrics;
}

/** What `train` returns (the parts the benchmark uses). */
export interface TrainOutcome {
  model: string;
  metrics: MetricSet;
  history: { step: number; metrics: MetricSet }[];
  losses: number[];
  steps: number;
  elapsed_s: number;
  samples_per_s: number;
  device: string;
  /** With `select_best`: the evaluation step whose weights were kept (metrics are that step's). */
  best_step?: number | null;
  /** With `select_best`: the validation metrics of that step. */
  best_val_metrics?: MetricSet | null;
}

/** An event of a running `train` call. */
export interface TrainEvent {
  type: string;
  data: Record<string, unknown>;
}

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
export interface EvalOptions {
  ks?: number[];
  nmi?: boolean;
  chunk_size?: number;
  seed?: number;
}

/** The runtime's hello, the parts the benchmark reads. */
export interface HelloInfo {
  protocol_version: string;
  runtime_version: string;
  python: string;
  torch: string;
  platform: string;
  devices: { type: string; index: number; name: string; memory_bytes?: number }[];
  methods: { name: string; description?: string; params_schema?: unknown }[];
  /** `losses`: the loss names the plugin accepts; an entry ending in "*" is a prefix pattern ("pml:*"). */
  plugins: { name: string; version: string; description?: string; config_schema?: unknown; losses?: string[] }[];
  plugin_errors?: { name: string; error: string }[];
}

/** What the runner needs from a runtime. */
export interface BenchBackend {
  readonly hello: HelloInfo;
  /** Runs `train`; `onEvent` sees its events in order. */
  train(params: Record<string, unknown>, onEvent: (ev: TrainEvent) => void): Promise<TrainOutcome>;
  /** Embeds the eval split of `data` with `model` and projects it to 2-D (PCA). */
  project(model: string, data: unknown, evalSplit: string): Promise<Projection>;
  /** Embeds the split `split` of `data` with `model` (the `embed` method). */
  embed(model: string, data: unknown, split: string): Promise<Embedded>;
  /** Retrieval metrics of given embeddings (the `evaluate` method, self-retrieval). */
  evaluateEmbeddings(e: Embedded, options: EvalOptions): Promise<MetricSet>;
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
  metrics: MetricSet;
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
  best_val_metrics?: MetricSet | null;
  /**
   * Cross-validation: set on the record of the concatenated embedding (MLRC), whose metrics are
   * those of the F fold models' L2-normalised test embeddings joined along the feature axis.
   */
  concatenated?: { folds: number; fold_dim: number; dim: number };
}
