/**
 * Shapes the benchmark runner exchanges with the runtime (docs/training.md) and writes to disk.
 * @internal
 */

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
}
