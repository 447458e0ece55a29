import { describe, expect, it } from "vitest";
import { expandSuite, loadSuite } from "./suite.ts";
import { lossKnown } from "../runtime/plugin-checks.ts";
import { compileTrainSchema, validateLosses, validateRuns, validateSamplers } from "./validate.ts";

describe("loss names against hello's plugins[].losses", () => {
  const { suite } = loadSuite("tiny");
  const withLoss = (name: string) => expandSuite({ ...suite, losses: [{ ...suite.losses[0]!, name }] });
  const plugins = (losses?: string[]) => ["pml-miner", "nearest-positive"].map((name) => ({ name, losses }));

  it("patterns ending in * match by prefix, other entries exactly", () => {
    expect(lossKnown("pml:CircleLoss", ["triplet", "pml:*"])).toBe(true);
    expect(lossKnown("pml:CircleLoss", ["triplet", "pml:TripletMarginLoss"])).toBe(false);
    expect(lossKnown("triplets", ["triplet"])).toBe(false);
  });

  it("an unknown loss is reported once per suite path with the known losses", () => {
    const issues = validateLosses(plugins(["triplet", "margin", "pml:*"]), withLoss("tripplet"));
    expect(issues.map((i) => i.path)).toEqual(["$.losses[0].name"]);
    expect(issues[0]!.message).toBe('unknown loss "tripplet" for sampler "pml-miner"; known losses: "triplet", "margin", "pml:*"');
  });

  it("pml:<Class> passes only when the plugin reports pml:*; a plugin without a list is not checked", () => {
    expect(validateLosses(plugins(["triplet", "pml:*"]), withLoss("pml:CircleLoss"))).toEqual([]);
    expect(validateLosses(plugins(["triplet"]), withLoss("pml:CircleLoss"))).toHaveLength(1);
    expect(validateLosses(plugins(undefined), withLoss("anything"))).toEqual([]);
  });
});

describe("sampler configs against the plugins' config schemas", () => {
  const { suite } = loadSuite("tiny");
  const schema = { type: "object", additionalProperties: false, properties: { miner: { anyOf: [{ type: "string" }, { type: "null" }] }, miner_config: { type: "object" } } };
  const plugins = [{ name: "pml-miner", config_schema: schema }, { name: "nearest-positive", config_schema: { type: "object", additionalProperties: false, properties: { negatives: { type: "string" } } } }];
  const { baseline_config: _ignored, ...tinyEntry } = suite.losses[0]!;
  const entry = { ...tinyEntry, name: "pml:TripletMarginLoss", baseline: "pml-miner", sampler_config: { negatives: "semihard" } };

  it("the baseline runs with baseline_config, the other samplers with sampler_config", () => {
    const runs = expandSuite({ ...suite, losses: [{ ...entry, baseline_config: { miner: "TripletMarginMiner" } }] });
    const base = runs.find((r) => r.baseline)!;
    const method = runs.find((r) => !r.baseline)!;
    expect(base.train.sampler).toEqual({ name: "pml-miner", config: { miner: "TripletMarginMiner" } });
    expect(method.train.sampler).toEqual({ name: "nearest-positive", config: { negatives: "semihard" } });
    expect(validateSamplers(plugins, runs)).toEqual([]);
  });

  it("a mistake in baseline_config is reported at its own path", () => {
    const runs = expandSuite({ ...suite, losses: [{ ...entry, baseline_config: { minor: "TripletMarginMiner" } }] });
    const issues = validateSamplers(plugins, runs);
    expect(issues.map((i) => `${i.path}: ${i.message}`)).toEqual(["$.losses[0].baseline_config.minor: is not a known parameter"]);
  });

  it("without baseline_config the baseline shares sampler_config", () => {
    const runs = expandSuite({ ...suite, losses: [entry] });
    const issues = validateSamplers(plugins, runs);
    expect(issues.map((i) => i.path)).toEqual(["$.losses[0].sampler_config.negatives"]);
  });
});

describe("schemas as pydantic writes them", () => {
  const { suite } = loadSuite("tiny");
  // A union tagged on `kind` with OpenAPI's `discriminator` (propertyName and mapping), which
  // ajv does not implement: it must pass over the keyword and decide by each branch's `const`.
  const branches = {
    Mlp: { type: "object", additionalProperties: false, required: ["kind"], properties: { kind: { const: "mlp" }, hidden: { type: "array", items: { type: "integer", minimum: 1 } } } },
    Convnet: { type: "object", additionalProperties: false, required: ["kind"], properties: { kind: { const: "convnet" }, channels: { type: "array" } } },
  };
  const model = { oneOf: [{ $ref: "#/$defs/Mlp" }, { $ref: "#/$defs/Convnet" }], discriminator: { propertyName: "kind", mapping: { mlp: "#/$defs/Mlp", convnet: "#/$defs/Convnet" } } };
  const schema = { type: "object", $defs: branches, properties: { model } };
  const withModel = (m: unknown) => expandSuite({ ...suite, seeds: [0], samplers: [], train: { ...suite.train, model: m } }).slice(0, 1);
  const checkWith = (s: object, m: unknown) => validateRuns(compileTrainSchema(s), withModel(m)).map((i) => `${i.path}: ${i.message}`);
  const check = (m: unknown) => checkWith(schema, m);

  it("validates a discriminated union by its tags", () => {
    expect(check({ kind: "mlp", hidden: [4] })).toEqual([]);
    expect(check({ kind: "convnet", channels: [] })).toEqual([]);
    expect(check({ kind: "mlp", hidden: [0] })).toEqual(["$.train.model.hidden[0]: must be >= 1"]);
    expect(check({ kind: "mlp", channels: [] })).toEqual(["$.train.model.channels: is not a known parameter"]);
    expect(check({ kind: "mlpp" })).toEqual(['$.train.model.kind: must be one of "mlp", "convnet"']);
  });

  it("gives the same answers as the schema without the discriminator", () => {
    const plain = { ...schema, properties: { model: { oneOf: model.oneOf } } };
    for (const m of [{ kind: "mlp" }, { kind: "convnet", hidden: [1] }, { kind: "mlp", hidden: [-1, 2] }, { kind: "x" }, {}]) expect(check(m)).toEqual(checkWith(plain, m));
  });
});
