import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Runtime } from "../runtime/runtime.ts";
import { CancelledError, ErrorCode, PythonError, ValidationError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import type { TrainConfig, TrainEvent } from "./index.ts";

// Small enough for two CPU cores: 1,000 real digits, 5 coarse classes of 2 digits.
const DATA = { kind: "mnist", per_digit: 100 } as const;
function config(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    data: DATA,
    model: { kind: "mlp", hidden: [64], embedding_dim: 32 },
    loss: { name: "triplet", config: { margin: 0.2 } },
    sampler: { name: "nearest-positive", config: {} },
    batch: { classes: 5, per_class: 6 },
    optimizer: { kind: "adam", lr: 0.002 },
    steps: 120,
    eval_every: 60,
    eval: { ks: [1, 4], nmi: false },
    device: "cpu",
    seed: 7,
    ...over,
  };
}

describe("training from TypeScript", () => {
  let rt: Runtime;
  let dir: string;
  beforeAll(async () => {
    rt = await Runtime.start();
    dir = mkdtempSync(join(tmpdir(), "nearpos-train-"));
  });
  afterAll(async () => {
    await rt?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("trains on mnist coarse classes and beats the untrained model, coarse and fine", async () => {
    // One step at a negligible learning rate: the untrained model's metrics.
    const base = await rt.train(config({ steps: 1, eval_every: 0, optimizer: { kind: "adam", lr: 1e-12 } })).result;
    const run = rt.train(config({ checkpoint: { dir, every: 0 } }));
    const events: TrainEvent[] = [];
    for await (const ev of run.events) events.push(ev);
    const result = await run.result;
    expect(events.filter((e) => e.type === "step")).toHaveLength(120);
    expect(events.filter((e) => e.type === "eval").map((e) => e.data.step)).toEqual([60, 120]);
    expect(events.some((e) => e.type === "epoch")).toBe(true);
    expect(result.steps).toBe(120);
    expect(result.samples_per_s).toBeGreaterThan(0);
    expect(result.best_step).toBeNull(); // no select_best
    expect(result.best_val_metrics).toBeNull();
    const fine = result.metrics.fine;
    const baseFine = base.metrics.fine;
    if (!fine || !baseFine) throw new Error("mnist must give fine metrics");
    expect(result.metrics.coarse["recall@1"]).toBeGreaterThan((base.metrics.coarse["recall@1"] ?? 1) + 0.02);
    expect(fine["recall@1"]).toBeGreaterThan((baseFine["recall@1"] ?? 1) + 0.02);

    // The handle embeds and evaluates; a checkpoint round trip gives the same metrics.
    const emb = await rt.embed({ model: result.model, data: DATA, split: "test" });
    expect(emb.embeddings.shape).toEqual([300, 32]);
    const ev = await rt.evaluate({ model: result.model, data: DATA, ks: [1, 4], nmi: false, projection: "pca" });
    expect(ev.metrics.coarse).toEqual(result.metrics.coarse);
    expect(ev.projection?.shape).toEqual([300, 2]);
    const path = join(dir, "saved.pt");
    await rt.saveCheckpoint({ model: result.model, path });
    const loaded = await rt.loadCheckpoint({ path });
    const again = await rt.evaluate({ embeddings: (await rt.embed({ model: loaded.model, data: DATA })).embeddings, labels: emb.labels, ks: [1, 4], nmi: false });
    expect(again.metrics.coarse).toEqual(result.metrics.coarse);
  });

  it("gives identical metrics for the same seed", async () => {
    const c = config({ steps: 40, eval_every: 0 });
    const a = await rt.train(c).result;
    const b = await rt.train(c).result;
    expect(b.metrics).toEqual(a.metrics);
    expect(b.losses).toEqual(a.losses);
  });

  it("cancels mid-train, then serves the next request", async () => {
    const ac = new AbortController();
    const run = rt.train(config({ steps: 100_000, eval_every: 0 }), {
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === "step" && e.data.step === 3) ac.abort();
      },
    });
    await expect(run.result).rejects.toBeInstanceOf(CancelledError);
    const ok = await rt.train(config({ steps: 2, eval_every: 0 })).result;
    expect(ok.steps).toBe(2);
  });

  it("rejects a bad config in TypeScript before any work, naming the field", () => {
    const bad = { ...config(), batch: { classes: 5, per_clas: 4 } } as unknown as TrainConfig;
    let err: unknown;
    try {
      rt.train(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toContain("batch");
    expect((err as ValidationError).message).toContain("per_clas");
  });

  it("runs trainings one at a time: a seeded run with dropout is the same alone and alongside another", async () => {
    const c = config({ steps: 30, eval_every: 0, model: { kind: "mlp", hidden: [64], embedding_dim: 32, dropout: 0.3 } });
    const alone = await rt.train(c).result;
    const other = rt.train({ ...c, seed: 8 });
    const events: TrainEvent[] = [];
    const again = rt.train(c, { onEvent: (e) => events.push(e) });
    const [, together] = await Promise.all([other.result, again.result]);
    expect(together.losses).toEqual(alone.losses);
    expect(together.metrics).toEqual(alone.metrics);
    expect(alone.queued_s).toBe(0);
    const queued = events.filter((e) => e.type === "queued");
    if (queued.length) expect(queued[0]?.data.ahead).toBe(1);
  });

  it("gives the same bad loss config the same code from train and from loss", async () => {
    const emb = Tensor.from(Array.from({ length: 24 }, (_, i) => Math.sin(i)), [12, 2]);
    const labels = Tensor.from([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], [12], "int64");
    const bad = { bogus: 1 };
    const fromLoss = rt.loss({ loss: "triplet", loss_config: bad, sampler: "nearest-positive", embeddings: emb, labels });
    await expect(fromLoss).rejects.toSatisfy((e: unknown) => e instanceof PythonError && e.code === ErrorCode.invalidParams && e.evalue.startsWith("params.loss_config:"));
    const fromTrain = rt.train(config({ loss: { name: "triplet", config: bad } })).result;
    await expect(fromTrain).rejects.toSatisfy((e: unknown) => e instanceof PythonError && e.code === ErrorCode.invalidParams && e.evalue.startsWith("params.loss.config:"));
  });

  it("checks the sampler, its config and the loss against hello's plugins before sending", async () => {
    const thrown = (f: () => unknown): ValidationError => {
      try {
        f();
      } catch (e) {
        if (e instanceof ValidationError) return e;
        throw e;
      }
      throw new Error("no ValidationError");
    };
    const sampler = thrown(() => rt.train(config({ sampler: { name: "nearest", config: {} } })));
    expect(sampler.field).toBe("params.sampler.name");
    expect(sampler.message).toContain('unknown sampler "nearest"');
    expect(sampler.message).toContain('"nearest-positive"');
    const option = thrown(() => rt.train(config({ sampler: { name: "nearest-positive", config: { negativs: "all" } } })));
    expect(option.field).toBe("params.sampler.config.negativs");
    expect(option.message).toContain("is not a known parameter");
    const loss = thrown(() => rt.train(config({ loss: { name: "tripplet", config: {} } })));
    expect(loss.field).toBe("params.loss.name");
    expect(loss.message).toContain('unknown loss "tripplet"');
    const emb = Tensor.from(Array.from({ length: 8 }, (_, i) => i), [4, 2]);
    const labels = Tensor.from([0, 0, 1, 1], [4], "int64");
    const field = (name: string) => (e: unknown) => e instanceof ValidationError && e.field === name;
    await expect(rt.mine({ sampler: "nearest-positive", config: { distance: 3 }, embeddings: emb, labels })).rejects.toSatisfy(field("params.config.distance"));
    await expect(rt.loss({ loss: "triplet", sampler: "semihard", config: { bogus: 1 }, embeddings: emb, labels })).rejects.toSatisfy(field("params.config.bogus"));
    await expect(rt.loss({ loss: "tripplet", sampler: "semihard", embeddings: emb, labels })).rejects.toSatisfy(field("params.loss"));
  });

  it("rejects what only Python can check, naming the field, and keeps serving", async () => {
    // The untyped path skips no check: the same call through rt.call is refused in TypeScript too.
    await expect(rt.call("train", { ...config(), sampler: { name: "nearest", config: {} } })).rejects.toBeInstanceOf(ValidationError);
    await expect(rt.train(config({ loss: { name: "pml:TripletMarginLos", config: {} } })).result).rejects.toSatisfy(
      (e: unknown) => e instanceof PythonError && e.evalue.includes("TripletMarginLos"),
    );
    const tiny = (perMode: number) => ({ ...config(), data: { kind: "synthetic", classes: 3, per_mode: perMode, modes_per_class: 1 } }) as TrainConfig;
    await expect(rt.train(tiny(2)).result).rejects.toSatisfy((e: unknown) => e instanceof PythonError && e.evalue.includes("single sample"));
    const one = tiny(4);
    await expect(rt.train({ ...one, batch: { classes: 3, per_class: 4, small_class: "error" } }).result).rejects.toSatisfy(
      (e: unknown) => e instanceof PythonError && e.evalue.includes("fewer than batch.per_class"),
    );
    expect((await rt.train(config({ steps: 1, eval_every: 0 })).result).steps).toBe(1);
  });
});
