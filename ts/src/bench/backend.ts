/**
 * The benchmark's view of a runtime: `train`, a PCA projection of the test embeddings, `embed`,
 * `evaluate` on given embeddings and `release`, over the real {@link Runtime} (ZeroMQ, Python,
 * torch).
 * @internal
 */
import { Runtime } from "../runtime/runtime.ts";
import type { RuntimeOptions } from "../runtime/options.ts";
import { Tensor } from "../tensor.ts";
import type { BenchBackend, Embedded, EvalOptions, HelloInfo, MetricSet, Projection, TrainEvent, TrainOutcome } from "./types.ts";

function toNumbers(v: unknown): number[] {
  if (v instanceof Tensor) return Array.from(v.data as ArrayLike<number | bigint>, (x) => Number(x));
  if (Array.isArray(v)) return v.map(Number);
  throw new TypeError(`expected a tensor, got ${typeof v}`);
}

/** A {@link BenchBackend} on a started runtime. */
export class RuntimeBackend implements BenchBackend {
  private constructor(readonly rt: Runtime) {}

  /** Starts a runtime process and wraps it. */
  static async start(options: RuntimeOptions = {}): Promise<RuntimeBackend> {
    return new RuntimeBackend(await Runtime.start(options));
  }

  get hello(): HelloInfo {
    return this.rt.hello as unknown as HelloInfo;
  }

  async train(params: Record<string, unknown>, onEvent: (ev: TrainEvent) => void): Promise<TrainOutcome> {
    const r = await this.rt.call<Record<string, unknown>>("train", params, {
      onEvent: (e) => onEvent({ type: e.type, data: (e.data ?? {}) as Record<string, unknown> }),
    });
    return {
      model: String(r.model),
      metrics: r.metrics as MetricSet,
      history: (r.history ?? []) as TrainOutcome["history"],
      losses: (r.losses ?? []) as number[],
      steps: Number(r.steps),
      elapsed_s: Number(r.elapsed_s),
      samples_per_s: Number(r.samples_per_s),
      device: String(r.device),
      best_step: typeof r.best_step === "number" ? r.best_step : null,
      best_val_metrics: (r.best_val_metrics ?? null) as MetricSet | null,
    };
  }

  async project(model: string, data: unknown, split: string): Promise<Projection> {
    const r = await this.rt.call<Record<string, unknown>>("evaluate", { model, data, split, projection: "pca", nmi: false });
    const points = toNumbers(r.projection);
    // Four decimals are plenty for a plot and keep projection.json small.
    const out: Projection = { points: points.map((x) => Math.round(x * 1e4) / 1e4), labels: toNumbers(r.labels) };
    if (r.fine_labels !== undefined && r.fine_labels !== null) out.fineLabels = toNumbers(r.fine_labels);
    return out;
  }

  async embed(model: string, data: unknown, split: string): Promise<Embedded> {
    const r = await this.rt.call<Record<string, unknown>>("embed", { model, data, split });
    if (!(r.embeddings instanceof Tensor) || !(r.labels instanceof Tensor)) throw new TypeError("embed: the runtime returned no embeddings/labels tensors");
    const out: Embedded = { embeddings: r.embeddings, labels: r.labels };
    if (r.fine_labels instanceof Tensor) out.fineLabels = r.fine_labels;
    return out;
  }

  async evaluateEmbeddings(e: Embedded, options: EvalOptions): Promise<MetricSet> {
    const r = await this.rt.call<Record<string, unknown>>("evaluate", { ...options, embeddings: e.embeddings, labels: e.labels, ...(e.fineLabels ? { fine_labels: e.fineLabels } : {}) });
    return r.metrics as MetricSet;
  }

  async release(model: string): Promise<void> {
    await this.rt.call("release", { id: model });
  }

  async close(): Promise<void> {
    await this.rt.close();
  }
}
