// MLRC cross-validation end to end through the real runtime (Python, torch, ZeroMQ): the
// tiny-mlrc suite expands into per-fold runs, each fold keeps its best validation step, and the
// reported figures are the fold means of the selected models' test metrics.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RuntimeBackend } from "./backend.ts";
import { Progress } from "./progress.ts";
import { runSuite } from "./runner.ts";
import { expandSuite, loadSuite } from "./suite.ts";
import type { RunRecord } from "./types.ts";
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
