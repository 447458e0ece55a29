import { afterAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expandEnv, expandSuite, listSuites, loadSuite, parseSuite, SuiteError, SUITES_DIR } from "./suite.ts";

const tiny = () => JSON.parse(readFileSync(join(SUITES_DIR, "tiny.json"), "utf8")) as Record<string, any>;

function issuesOf(text: string): { path: string; message: string }[] {
  try {
    parseSuite(text, "my-suite.json");
  } catch (e) {
    expect(e).toBeInstanceOf(SuiteError);
    expect((e as SuiteError).message).toContain("my-suite.json");
    return [...(e as SuiteError).issues];
  }
  throw new Error("expected a SuiteError");
}

describe("suite files", () => {
  it("every built-in suite parses and expands", () => {
    const names = listSuites();
    expect(names).toContain("mnist-coarse");
    expect(names).toContain("tiny");
    for (const n of names) {
      const { suite } = loadSuite(n);
      expect(suite.name).toBe(n);
      expect(expandSuite(suite).length).toBeGreaterThan(0);
    }
  });

  it("the default suite covers 4 PML losses x (PML's own recipe, nearest-positive) x >= 3 seeds", () => {
    const { suite } = loadSuite("mnist-coarse");
    const runs = expandSuite(suite);
    expect(new Set(runs.map((r) => r.lossId))).toEqual(new Set(["triplet", "margin", "multi-similarity", "contrastive"]));
    expect(new Set(runs.map((r) => (r.train.loss as { name: string }).name))).toEqual(new Set(["pml:TripletMarginLoss", "pml:MarginLoss", "pml:MultiSimilarityLoss", "pml:ContrastiveLoss"]));
    expect(suite.seeds.length).toBeGreaterThanOrEqual(3);
    expect(runs).toHaveLength(4 * 2 * suite.seeds.length);
    const samplerOf = (lossId: string, baseline: boolean) => runs.find((r) => r.lossId === lossId && r.baseline === baseline)!.train.sampler;
    expect(samplerOf("triplet", true)).toEqual({ name: "pml-miner", config: { miner: "TripletMarginMiner", miner_config: { margin: 0.2, type_of_triplets: "semihard" } } });
    expect(samplerOf("triplet", false)).toEqual({ name: "nearest-positive", config: { negatives: "semihard" } });
    expect(samplerOf("margin", true)).toMatchObject({ name: "pml-miner", config: { miner: "DistanceWeightedMiner" } });
    expect(samplerOf("margin", false)).toEqual({ name: "nearest-positive", config: { negatives: "distance-weighted" } });
    expect(samplerOf("multi-similarity", true)).toMatchObject({ name: "pml-miner", config: { miner: "MultiSimilarityMiner" } });
    expect(samplerOf("contrastive", true)).toEqual({ name: "pml-miner", config: { miner: null } });
    expect(runs.find((r) => r.lossId === "margin")!.train.loss).toMatchObject({ config: { learn_beta: true } });
  });

  it("names the JSON path and the allowed values of a mistake", () => {
    const bad = tiny();
    bad.protocol = "fast";
    bad.losses[0].sampler_confg = {};
    delete bad.losses[0].baseline;
    const issues = issuesOf(JSON.stringify(bad));
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i.message]));
    expect(byPath["$.protocol"]).toMatch(/"quick"\|"paper"\|"mlrc"|quick.*paper.*mlrc/);
    expect(byPath["$.losses[0]"]).toMatch(/sampler_confg/);
    expect(byPath["$.losses[0].baseline"]).toBeDefined();
  });

  it("rejects a claim about a loss the suite lacks, and invalid JSON", () => {
    const bad = tiny();
    bad.claim.losses = ["margin"];
    expect(issuesOf(JSON.stringify(bad))).toEqual([{ path: "$.claim.losses[0]", message: 'unknown loss id "margin"; allowed: "triplet"' }]);
    expect(issuesOf("{ nope")[0]!.message).toMatch(/not valid JSON/);
  });

  it("an unknown built-in name lists the known ones", () => {
    expect(() => loadSuite("mnist-corse")).toThrow(/built-in suites: .*mnist-coarse/);
  });
});

describe("expandSuite", () => {
  const suite = parseSuite(JSON.stringify(tiny()), "tiny.json");

  it("orders runs by loss, sampler, seed with stable ids", () => {
    expect(expandSuite(suite).map((r) => r.id)).toEqual(["triplet__pml-miner__s0", "triplet__pml-miner__s1", "triplet__nearest-positive__s0", "triplet__nearest-positive__s1"]);
  });

  it("applies seeds, device, quick settings and sampler/loss selections", () => {
    const runs = expandSuite(suite, { seeds: [7], device: "cuda", quick: true, samplers: ["baseline", "random-positive"], losses: ["triplet", "pml:CircleLoss"] });
    expect(runs.map((r) => r.id)).toEqual(["triplet__pml-miner__s7", "triplet__random-positive__s7", "pml-CircleLoss__all-positives__s7", "pml-CircleLoss__random-positive__s7"]);
    for (const r of runs) {
      expect(r.train.device).toBe("cuda");
      expect(r.train.steps).toBe(3);
      expect(r.train.seed).toBe(7);
    }
    expect(runs[2]!.train.loss).toEqual({ name: "pml:CircleLoss", config: {} });
  });

  it("--nproc trains every run distributed, keeping the suite's own distributed settings; 1 trains in one process", () => {
    const withDist = parseSuite(JSON.stringify({ ...tiny(), train: { ...tiny().train, distributed: { nproc_per_node: 4, backend: "gloo" } } }), "tiny.json");
    for (const r of expandSuite(withDist, { nproc: 2 })) expect(r.train.distributed).toEqual({ nproc_per_node: 2, backend: "gloo" });
    for (const r of expandSuite(withDist)) expect(r.train.distributed).toEqual({ nproc_per_node: 4, backend: "gloo" });
    for (const r of expandSuite(withDist, { nproc: 1 })) expect(r.train.distributed).toBeNull();
    for (const r of expandSuite(suite, { nproc: 3 })) expect(r.train.distributed).toEqual({ nproc_per_node: 3 });
  });

  it("expands ${VAR} and ${VAR:-default} in config strings", () => {
    expect(expandEnv({ a: "${X}/cub", b: ["${Y:-data}/x"], c: 1 }, { X: "/d" })).toEqual({ a: "/d/cub", b: ["data/x"], c: 1 });
  });
});

describe("cross-validation expansion", () => {
  it("an MLRC suite runs each (loss, sampler, seed) once per class-disjoint fold with model selection", () => {
    const { suite } = loadSuite("cub200-mlrc");
    const cv = suite.cross_validation!;
    const plain = expandSuite({ ...suite, cross_validation: undefined });
    const runs = expandSuite(suite);
    expect(runs).toHaveLength(plain.length * cv.folds);
    const ofFirst = runs.filter((r) => r.id.startsWith(`${plain[0]!.id}__f`));
    expect(ofFirst.map((r) => r.fold)).toEqual([...Array(cv.folds).keys()]);
    for (const r of ofFirst) {
      expect(r.id).toBe(`${plain[0]!.id}__f${r.fold}`);
      expect(r.train.data).toMatchObject({ kind: "cub", folds: cv.folds, fold: r.fold });
      expect(r.train).toMatchObject({ select_best: true, select_on: cv.select_on });
    }
  });
});

describe("extends", () => {
  const dir = mkdtempSync(join(tmpdir(), "nearpos-suite-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, value: unknown) => {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), JSON.stringify(value));
    return join(dir, name);
  };
  const errorOf = (file: string): SuiteError => {
    try {
      loadSuite(file);
    } catch (e) {
      expect(e).toBeInstanceOf(SuiteError);
      return e as SuiteError;
    }
    throw new Error("expected a SuiteError");
  };
  const { name: _name, description: _description, ...tinyBase } = tiny();

  it("merges objects deeply, replaces arrays and scalars, through a chain of bases", () => {
    write("base/root.json", { ...tinyBase, seeds: [0, 1, 2], train: { ...tinyBase.train, steps: 50 } });
    write("base/mid.json", { extends: "root.json", train: { model: { hidden: [4] }, eval: { ks: [1] } } });
    const file = write("child.json", { extends: "base/mid.json", name: "child", description: "a child suite", seeds: [5], train: { data: { classes: 3 } } });
    const { suite, sources } = loadSuite(file);
    expect(suite.seeds).toEqual([5]);
    expect(suite.train.steps).toBe(50);
    expect(suite.train.model).toEqual({ ...tinyBase.train.model, hidden: [4] });
    expect(suite.train.data).toEqual({ ...tinyBase.train.data, classes: 3 });
    expect((suite.train.eval as { ks: number[] }).ks).toEqual([1]);
    expect(suite.losses).toEqual(parseSuite(JSON.stringify(tiny()), "tiny.json").losses);
    expect(suite).not.toHaveProperty("extends");
    expect(sources.files).toEqual([file, join(dir, "base/mid.json"), join(dir, "base/root.json")]);
    expect(sources.fileOf(["train", "model", "hidden", 0])).toBe(join(dir, "base/mid.json"));
    expect(sources.fileOf(["train", "model", "kind"])).toBe(join(dir, "base/root.json"));
    expect(sources.fileOf(["seeds", 0])).toBe(file);
  });

  it("names the base file and the JSON path of a mistake made there", () => {
    write("base/bad.json", { ...tinyBase, losses: [{ ...tinyBase.losses[0], baseline: 3 }] });
    const file = write("uses-bad.json", { extends: "base/bad.json", name: "uses-bad", description: "d" });
    const e = errorOf(file);
    expect(e.file).toBe(file);
    expect(e.issues).toEqual([{ path: "$.losses[0].baseline", message: expect.any(String), file: join(dir, "base/bad.json") }]);
    expect(e.message).toContain(`${join(dir, "base/bad.json")}: $.losses[0].baseline`);
  });

  it("a cycle and a missing base are errors naming the file", () => {
    write("cycle-a.json", { extends: "cycle-b.json" });
    const b = write("cycle-b.json", { extends: "cycle-a.json" });
    const cycle = errorOf(join(dir, "cycle-a.json"));
    expect(cycle.file).toBe(b);
    expect(cycle.issues[0]!.path).toBe("$.extends");
    expect(cycle.issues[0]!.message).toBe(`extends cycle: ${join(dir, "cycle-a.json")} -> ${b} -> ${join(dir, "cycle-a.json")}`);
    const self = write("self.json", { extends: "self.json" });
    expect(errorOf(self).message).toMatch(/extends cycle/);
    const missing = write("missing.json", { extends: "base/nowhere.json", name: "missing" });
    expect(errorOf(missing).issues).toEqual([{ path: "$.extends", message: `base file ${join(dir, "base/nowhere.json")} does not exist` }]);
    expect(errorOf(write("bad-extends.json", { extends: 3 })).issues[0]!.path).toBe("$.extends");
  });

  it("base files are not listed as suites", () => {
    expect(listSuites(dir)).not.toContain("root");
    const builtIn = listSuites();
    expect(builtIn.some((n) => ["paper", "mlrc", "pml-recipes"].includes(n) || n.startsWith("base"))).toBe(false);
    expect(loadSuite("cub200-paper-128").sources.files.map((f) => f.slice(SUITES_DIR.length + 1))).toEqual(["cub200-paper-128.json", "base/paper.json", "base/pml-recipes.json"]);
  });
});
