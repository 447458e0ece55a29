// End to end through the real runtime (Python, torch, ZeroMQ): the tiny suite, its outputs,
// reproduction from the manifest, resume, suite mistakes, presets' dry runs, compare.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { spawnSync } from "node:child_process";
import { run } from "./index.ts";
import { RuntimeBackend } from "../bench/backend.ts";
import type { BenchBackend } from "../bench/types.ts";
import type { RunRecord } from "../bench/types.ts";
import { pct } from "../bench/results.ts";
import { REPO_ROOT } from "../runtime/process.ts";

class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

let shared: RuntimeBackend;
let dir: string;
// One runtime for the whole file (starting one costs seconds); close() is a no-op until afterAll.
const backend = async (): Promise<BenchBackend> => ({
  get hello() {
    return shared.hello;
  },
  train: (p, on) => shared.train(p, on),
  project: (m, d, s) => shared.project(m, d, s),
  embed: (m, d, s) => shared.embed(m, d, s),
  evaluateEmbeddings: (e, o) => shared.evaluateEmbeddings(e, o),
  release: (m) => shared.release(m),
  close: async () => {},
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(args, { io: { stdout, stderr }, backend });
  return { code, out: stdout.text, err: stderr.text };
}

beforeAll(async () => {
  shared = await RuntimeBackend.start();
  dir = mkdtempSync(join(tmpdir(), "nearpos-bench-"));
});

afterAll(async () => {
  await shared?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface ResultsJson {
  runs: RunRecord[];
  summary: { loss: string; sampler: string; stats: Record<string, { mean: number; halfWidth: number }> }[];
}

describe("nearpos bench (tiny suite, real runtime)", () => {
  const outA = () => join(dir, "a");
  const outB = () => join(dir, "b");

  it("runs the suite and writes every output", async () => {
    const r = await cli(["bench", "--suite", "tiny", "--out", outA()]);
    expect(r.err).not.toMatch(/^error/m);
    expect(r.code).toBe(0);
    for (const f of ["manifest.json", "results.json", "results.csv", "summary.md", "report.html", "embedding.svg", "by-class.svg"]) expect(existsSync(join(outA(), f)), f).toBe(true);
    const res = JSON.parse(readFileSync(join(outA(), "results.json"), "utf8")) as ResultsJson;
    expect(res.runs).toHaveLength(4);
    for (const run of res.runs) {
      const lines = readFileSync(join(outA(), "runs", run.id, "metrics.jsonl"), "utf8").trim().split("\n");
      expect(lines.map((l) => (JSON.parse(l) as { step: number }).step)).toEqual([3, 6]);
    }
    const manifest = JSON.parse(readFileSync(join(outA(), "manifest.json"), "utf8")) as Record<string, unknown>;
    expect(manifest.config_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect((manifest.versions as Record<string, string>).torch).toBe(shared.hello.torch);
    expect(manifest.seeds).toEqual([0, 1]);
    // The printed table is the summary's.
    expect(r.out).toContain("triplet / nearest-positive");
    expect(r.out).toMatch(/HELD: triplet|NOT HELD: triplet/);
  });

  it("summary.md and report.html hold exactly the numbers of results.json", () => {
    const res = JSON.parse(readFileSync(join(outA(), "results.json"), "utf8")) as ResultsJson;
    const md = readFileSync(join(outA(), "summary.md"), "utf8");
    const html = readFileSync(join(outA(), "report.html"), "utf8");
    const keys = ["coarse.recall@1", "coarse.map@r", "coarse.nmi", "fine.recall@1", "fine.nmi"];
    for (const v of res.summary) {
      const row = md.split("\n").find((l) => l.startsWith(`| ${v.loss} / ${v.sampler}`));
      expect(row, `${v.loss}/${v.sampler} row`).toBeDefined();
      const cells = row!.split("|").slice(3, 3 + keys.length).map((c) => c.replace(/\*/g, "").trim());
      keys.forEach((k, j) => {
        const [mean, half] = cells[j]!.split(" ± ").map(Number);
        expect(mean).toBe(Number(pct(v.stats[k]!.mean)));
        expect(mean).toBeCloseTo(v.stats[k]!.mean * 100, 2);
        expect(half).toBeCloseTo(v.stats[k]!.halfWidth * 100, 2);
      });
      const tr = html.split("\n").find((l) => l.includes(`<td>${v.loss} / ${v.sampler}`))!;
      for (const k of keys) {
        const m = new RegExp(`data-key="${k}" data-mean="([^"]+)" data-half="([^"]+)"[^>]*>([^<]+)<`).exec(tr);
        expect(m, k).not.toBeNull();
        expect(Number(m![1])).toBeCloseTo(v.stats[k]!.mean * 100, 2);
        expect(Number(m![2])).toBeCloseTo(v.stats[k]!.halfWidth * 100, 2);
        expect(m![3]).toBe(`${m![1]} ± ${m![2]}`);
      }
    }
    expect(html).toContain("<svg");
    expect(html).not.toMatch(/<script|<link|src="http/);
  });

  it("reproduces the metrics bitwise from the manifest", async () => {
    const r = await cli(["bench", "--from-manifest", join(outA(), "manifest.json"), "--out", outB(), "--no-progress"]);
    expect(r.code).toBe(0);
    const a = JSON.parse(readFileSync(join(outA(), "results.json"), "utf8")) as ResultsJson;
    const b = JSON.parse(readFileSync(join(outB(), "results.json"), "utf8")) as ResultsJson;
    expect(b.runs.map((x) => x.id)).toEqual(a.runs.map((x) => x.id));
    b.runs.forEach((run, i) => expect(run.metrics).toEqual(a.runs[i]!.metrics));
  });

  it("--resume skips finished runs", async () => {
    const r = await cli(["bench", "--suite", "tiny", "--out", outA(), "--resume", "--json"]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { skipped: string[] }).skipped).toHaveLength(4);
  });

  it("compare shows zero differences between a run and its reproduction", async () => {
    const r = await cli(["bench", "compare", outA(), outB(), "--json"]);
    expect(r.code).toBe(0);
    const c = JSON.parse(r.out) as { rows: { diff: { diff: number } }[] };
    expect(c.rows.length).toBe(10); // 2 variants x 5 columns
    for (const row of c.rows) expect(row.diff.diff).toBe(0);
  });

  it("names the file, JSON path and allowed values of a suite mistake", async () => {
    const bad = JSON.parse(readFileSync(join(REPO_ROOT, "benchmarks", "suites", "tiny.json"), "utf8")) as Record<string, any>;
    bad.train.model.kind = "mlpp";
    bad.losses[0].baseline = "nearest-postive";
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify(bad));
    const r = await cli(["bench", "--suite", file, "--dry-run"]);
    expect(r.code).toBe(2);
    expect(r.out).toContain(file);
    expect(r.out).toMatch(/\$\.train\.model\.kind: must be one of "mlp", "convnet"/);
    expect(r.out).toMatch(/\$\.losses\[0\]\.baseline: unknown sampler "nearest-postive"; must be one of .*"nearest-positive"/);
    // Without --dry-run, the same mistake stops the run before training.
    const r2 = await cli(["bench", "--suite", file, "--out", join(dir, "never")]);
    expect(r2.code).toBe(2);
    expect(r2.err).toContain("$.train.model.kind");
    expect(existsSync(join(dir, "never"))).toBe(false);
  });

  it("names the base file of a mistake a suite inherits through extends", async () => {
    const { name: _n, description: _d, ...base } = JSON.parse(readFileSync(join(REPO_ROOT, "benchmarks", "suites", "tiny.json"), "utf8")) as Record<string, any>;
    base.train.model.kind = "mlpp";
    mkdirSync(join(dir, "base"), { recursive: true });
    writeFileSync(join(dir, "base", "tiny-base.json"), JSON.stringify(base));
    const file = join(dir, "child.json");
    writeFileSync(file, JSON.stringify({ extends: "base/tiny-base.json", name: "child", description: "a child of tiny", seeds: [0] }));
    const r = await cli(["bench", "--suite", file, "--dry-run", "--json"]);
    expect(r.code).toBe(2);
    const rep = JSON.parse(r.out) as { file: string; problems: { path: string; message: string; file?: string }[] };
    expect(rep.file).toBe(file);
    expect(rep.problems).toEqual([{ path: "$.train.model.kind", message: expect.stringMatching(/^must be one of "mlp", "convnet"/), file: join(dir, "base", "tiny-base.json") }]);
  });

  it("refuses --device cuda where the runtime has no CUDA device, before training", async (ctx) => {
    if (shared.hello.devices.some((d) => d.type === "cuda")) ctx.skip();
    const r = await cli(["bench", "--suite", "tiny", "--device", "cuda", "--out", join(dir, "cuda")]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no CUDA device/);
    expect(existsSync(join(dir, "cuda"))).toBe(false);
  });

  it.each(["cub200-paper-512", "sop-mlrc"])("dry-runs the %s preset without data", async (name) => {
    const r = await cli(["bench", "--suite", name, "--dry-run", "--json"]);
    const rep = JSON.parse(r.out) as { valid: boolean; problems: unknown[]; data_paths: { exists: boolean }[]; runs: string[] };
    expect(rep.problems).toEqual([]);
    expect(rep.valid).toBe(true);
    expect(r.code).toBe(0);
    expect(rep.runs.length).toBeGreaterThan(0);
    expect(rep.data_paths.length).toBeGreaterThan(0);
  });
});

describe("nearpos bin", () => {
  it("info --json prints the runtime hello", () => {
    const p = spawnSync(process.execPath, [join(REPO_ROOT, "ts", "bin", "nearpos.mjs"), "info", "--json"], { encoding: "utf8", timeout: 60_000 });
    expect(p.status).toBe(0);
    const info = JSON.parse(p.stdout) as { torch: string; devices: { type: string }[]; plugins: { name: string }[] };
    expect(info.devices.some((d) => d.type === "cpu")).toBe(true);
    expect(info.plugins.map((x) => x.name)).toContain("nearest-positive");
  });
});
