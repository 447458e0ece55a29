// MLRC cross-validation end to end through the real runtime (Python, torch, ZeroMQ): the
// tiny-mlrc suite expands into per-fold runs, each fold keeps its best validation step, and the
// reported figures are the fold means of the selected models' test metrics, with the figure of
// the selected models' concatenated embedding beside them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tensor } from "../tensor.ts";
import { RuntimeBackend } from "./backend.ts";
import { Progress } from "./progress.ts";
import { runSuite } from "./runner.ts";
import { expandSuite, loadSuite } from "./suite.ts";
import { pct } from "./results.ts";
import type { BenchBackend, Embedded, RunRecord } from "./types.ts";
import { validateLosses } from "./validate.ts";

let backend: RuntimeBackend;
let dir: string;

beforeAll(async () => {
  backend = await RuntimeBackend.start();
  dir = mkdtempSync(join(tmpdir(), "nearpos-mlrc-"));
});

afterAll(async () => {
  await backend?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("MLRC cross-validation (tiny-mlrc, real runtime)", () => {
  it("runs every fold, selects on validation MAP@R and averages test metrics over folds", async () => {
    const { suite, file } = loadSuite("tiny-mlrc");
    const runs = expandSuite(suite);
    expect(validateLosses(backend.hello.plugins, runs)).toEqual([]);
    const out = join(dir, "out");
    const res = await runSuite({ suite, suiteFile: file, runs, outDir: out, backend, progress: new Progress({ silent: true }) });

    const folds = res.records.filter((r) => r.fold !== undefined);
    expect(folds).toHaveLength(runs.length);
    for (const r of folds) {
      const history = readFileSync(join(out, "runs", r.id, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; metrics: RunRecord["metrics"] });
      expect(typeof r.best_step).toBe("number");
      expect(r.best_val_metrics?.coarse["map@r"]).toBeTypeOf("number");
      // The reported test metrics are those of the selected step, not necessarily the last.
      expect(r.metrics).toEqual(history.find((h) => h.step === r.best_step)!.metrics);
    }

    const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as { runs: RunRecord[]; fold_runs: RunRecord[] };
    expect(results.fold_runs).toHaveLength(runs.length);
    const samplers = [...new Set(runs.map((r) => r.sampler))];
    expect(results.runs.map((r) => r.id).sort()).toEqual(samplers.map((s) => `triplet__${s}__s0`).sort());
    for (const avg of results.runs) {
      const mine = folds.filter((f) => f.id.startsWith(`${avg.id}__f`));
      expect(mine.map((f) => f.fold)).toEqual([0, 1, 2, 3]);
      expect(avg.folds).toBe(4);
      const mean = mine.reduce((a, f) => a + f.metrics.coarse["map@r"]!, 0) / mine.length;
      expect(avg.metrics.coarse["map@r"]).toBeCloseTo(mean, 12);
    }
    // The summary aggregates the fold means (one value per seed).
    const v = res.variants.find((x) => x.sampler === "nearest-positive")!;
    expect(v.values["coarse.map@r"]).toEqual([results.runs.find((r) => r.sampler === "nearest-positive")!.metrics.coarse["map@r"]]);
  }, 120_000);

  it("reports the concatenated embedding of the selected fold models beside the fold mean", async () => {
    const { suite, file } = loadSuite("tiny-mlrc");
    const runs = expandSuite(suite);
    const out = join(dir, "concat");
    const embedded: Embedded[] = [];
    const recording: BenchBackend = {
      get hello() {
        return backend.hello;
      },
      train: (p, on) => backend.train(p, on),
      project: (m, d, s) => backend.project(m, d, s),
      embed: async (m, d, s) => {
        const e = await backend.embed(m, d, s);
        embedded.push(e);
        return e;
      },
      evaluateEmbeddings: (e, o) => backend.evaluateEmbeddings(e, o),
      release: (m) => backend.release(m),
      close: async () => {},
    };
    const res = await runSuite({ suite, suiteFile: file, runs, outDir: out, backend: recording, progress: new Progress({ silent: true }) });
    const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as { runs: RunRecord[]; fold_runs: RunRecord[]; concatenated_runs: RunRecord[]; summary: { loss: string; sampler: string; embedding?: string; values: Record<string, number[]> }[] };
    const F = suite.cross_validation!.folds;
    const d = (suite.train.model as { embedding_dim: number }).embedding_dim;
    const groups = results.runs.map((r) => r.id);
    expect(results.concatenated_runs.map((r) => r.id)).toEqual(groups.map((g) => `${g}__concat`));
    // Each fold model embedded the test split once, in run order.
    expect(embedded).toHaveLength(results.fold_runs.length);

    for (const [gi, rec] of results.concatenated_runs.entries()) {
      expect(rec.concatenated).toEqual({ folds: F, fold_dim: d, dim: F * d });
      const parts = embedded.slice(gi * F, gi * F + F);
      const folds = results.fold_runs.filter((f) => f.id.startsWith(`${groups[gi]}__f`));
      // The embedded models are the selected ones: alone, each reproduces its fold's test metrics.
      for (const [k, p] of parts.entries()) {
        expect(p.embeddings.shape).toEqual([parts[0]!.embeddings.shape[0], d]);
        const alone = await backend.rt.evaluate({ embeddings: p.embeddings, labels: p.labels, ks: [1], nmi: false });
        expect(alone.metrics.coarse["map@r"]).toBeCloseTo(folds[k]!.metrics.coarse["map@r"]!, 6);
        expect(alone.metrics.coarse["recall@1"]).toBeCloseTo(folds[k]!.metrics.coarse["recall@1"]!, 6);
      }
      // Our own concatenation: rows L2-normalised per model, joined along the feature axis.
      const n = parts[0]!.embeddings.shape[0]!;
      const joined = new Float32Array(n * F * d);
      for (const [k, p] of parts.entries()) {
        const x = p.embeddings.data as Float32Array;
        for (let r = 0; r < n; r++) {
          const row = x.subarray(r * d, r * d + d);
          const norm = Math.hypot(...row);
          row.forEach((v, c) => (joined[r * F * d + k * d + c] = v / norm));
        }
      }
      const mine = await backend.rt.evaluate({ embeddings: new Tensor("float32", [n, F * d], joined), labels: parts[0]!.labels, ...(parts[0]!.fineLabels ? { fine_labels: parts[0]!.fineLabels } : {}), ks: [1], nmi: false });
      expect(mine.metrics.fine).toBeDefined();
      expect(rec.metrics).toEqual(mine.metrics);
      // Reported beside the fold mean, in the summary, the printed table and every file.
      const label = `concatenated (${F} x ${d})`;
      const row = results.summary.find((s) => s.sampler === rec.sampler && s.embedding === label)!;
      expect(row.values["coarse.map@r"]).toEqual([rec.metrics.coarse["map@r"]]);
      expect(results.summary.find((s) => s.sampler === rec.sampler && s.embedding === "fold mean")).toBeDefined();
      const tableRow = res.table.split("\n").find((l) => l.includes(`/ ${rec.sampler}`) && l.includes(label))!;
      expect(tableRow).toContain(pct(rec.metrics.coarse["map@r"]!));
      expect(readFileSync(join(out, "summary.md"), "utf8")).toContain(`${label} |`);
      expect(readFileSync(join(out, "report.html"), "utf8")).toContain(label);
      const csv = readFileSync(join(out, "results.csv"), "utf8").trim().split("\n");
      const head = csv[0]!.split(",");
      const line = csv.find((l) => l.startsWith(`${rec.id},`))!.split(",");
      expect(line[head.indexOf("embedding")]).toBe(label);
      expect(Number(line[head.indexOf("coarse.map@r")])).toBe(rec.metrics.coarse["map@r"]);
    }

    // --resume finds every group done (folds and concatenated record) and reports the same figures.
    const again = await runSuite({ suite, suiteFile: file, runs, outDir: out, backend, resume: true, progress: new Progress({ silent: true }) });
    expect(again.skipped).toHaveLength(runs.length);
    const resumed = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as typeof results;
    expect(resumed.concatenated_runs).toEqual(results.concatenated_runs);
  }, 120_000);

  it("hello lists each plugin's losses and an unknown loss is named with its suite path", () => {
    const np = backend.hello.plugins.find((p) => p.name === "nearest-positive")!;
    expect(np.losses).toContain("triplet");
    expect(np.losses).toContain("pml:*");
    const { suite } = loadSuite("tiny-mlrc");
    const bad = expandSuite({ ...suite, losses: [{ ...suite.losses[0]!, name: "tripplet" }] });
    const issues = validateLosses(backend.hello.plugins, bad);
    expect(issues.length).toBeGreaterThan(0);
    expect(issues[0]!.path).toBe("$.losses[0].name");
    expect(issues[0]!.message).toContain('unknown loss "tripplet"');
    expect(issues[0]!.message).toContain('"triplet"');
    const pml = expandSuite({ ...suite, losses: [{ ...suite.losses[0]!, name: "pml:CircleLoss" }] });
    expect(validateLosses(backend.hello.plugins, pml)).toEqual([]);
  });
});
