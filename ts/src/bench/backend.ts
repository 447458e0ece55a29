/**
 * The benchmark's view of a runtime: `train`, a PCA projection of the test embeddings, `embed`,
 * `evaluate` on given embeddings and `release`, through the typed {@link Runtime} methods over
 * the real runtime (ZeroMQ, Python, torch).
 * @internal
 */
import type { EmbedParams, TrainConfig, TrainEvent, TrainResult } from "../generated/training.ts";
import type { RuntimeOptions } from "../runtime/options.ts";
import { Runtime } from "../runtime/runtime.ts";
import type { Tensor } from "../tensor.ts";
import type { BenchBackend, Embedded, EvalOptions, HelloReply, Metrics, Projection } from "./types.ts";

function toNumbers(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x));
}

// A suite's params are JSON from its file; the runtime's schema (the one the types are
// generated from) checks them in `rt.train`/`rt.embed` before anything is sent.
function asTrainConfig(params: Record<string, unknown>): TrainConfig {
  return params as unknown as TrainConfig;
}
function asData(data: unknown): EmbedParams["data"] {
  return data as EmbedParams["data"];
}
function asSplit(split: string): EmbedParams["split"] {
  return split as EmbedParams["split"];
}

/** A {@link BenchBackend} on a started runtime. */
export class RuntimeBackend implements BenchBackend {
  private constructor(readonly rt: Runtime) {}

  /** Starts a runtime process and wraps it. */
  static async start(options: RuntimeOptions = {}): Promise<RuntimeBackend> {
    return new RuntimeBackend(await Runtime.start(options));
  }

  get hello(): HelloReply {
    return this.rt.hello;
  }

  train(params: Record<string, unknown>, onEvent: (ev: TrainEvent) => void): Promise<TrainResult> {
    try {
      return this.rt.train(asTrainConfig(params), { onEvent }).result;
    } catch (err) {
      return Promise.reject(err); // a schema mistake rejects, as every other method here
    }
  }

  async project(model: string, data: unknown, split: string): Promise<Projection> {
    const r = await this.rt.evaluate({ model, data: asData(data), split: asSplit(split), projection: "pca", nmi: false });
    if (!r.projection) throw new TypeError("evaluate: the runtime returned no projection");
    // Four decimals are plenty for a plot and keep projection.json small.
    const out: Projection = { points: toNumbers(r.projection).map((x) => Math.round(x * 1e4) / 1e4), labels: toNumbers(r.labels) };
    if (r.fine_labels) out.fineLabels = toNumbers(r.fine_labels);
    return out;
  }

  async embed(model: string, data: unknown, split: string): Promise<Embedded> {
    const r = await this.rt.embed({ model, data: asData(data), split: asSplit(split) });
    const out: Embedded = { embeddings: r.embeddings, labels: r.labels };
    if (r.fine_labels) out.fineLabels = r.fine_labels;
    return out;
  }

  async evaluateEmbeddings(e: Embedded, options: EvalOptions): Promise<Metrics> {
    const r = await this.rt.evaluate({ ...options, embeddings: e.embeddings, labels: e.labels, ...(e.fineLabels ? { fine_labels: e.fineLabels } : {}) });
    return r.metrics;
  }

  async release(model: string): Promise<void> {
    await this.rt.call("release", { id: model });
  }

  async close(): Promise<void> {
    await this.rt.close();
  }
}
