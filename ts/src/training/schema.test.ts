import { beforeAll, describe, expect, it } from "vitest";
import { ValidationError } from "../errors.ts";
import type { MethodInfo } from "../protocol/messages.ts";
import { ParamsValidator } from "../runtime/validate.ts";
import { runtimeSchemas } from "./generate.ts";

// The checks a client makes with the runtime's own schema (hello's params_schema), before
// anything is sent: a mistake names the field the user got wrong, and every size is bounded.
describe("train schema as clients check it", () => {
  let validator: ParamsValidator;
  beforeAll(() => {
    validator = new ParamsValidator(runtimeSchemas().methods as MethodInfo[]);
  }, 60_000);

  function fieldOf(method: string, params: Record<string, unknown>): string | undefined {
    try {
      validator.check(method, params);
      return undefined;
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      return e.field;
    }
  }
  const base = { data: { kind: "synthetic" }, model: { kind: "mlp" } };

  it("names the field of the chosen kind, not another kind's fields", () => {
    // A union of kinds used to report the first member's complaint ("data.classes is not a known parameter").
    expect(fieldOf("train", { ...base, data: { kind: "synthetic", classes: 3, dim: -3 } })).toBe("params.data.dim");
    expect(fieldOf("train", { ...base, data: { kind: "synthetic", clases: 3 } })).toBe("params.data.clases");
    expect(fieldOf("train", { ...base, data: { kind: "cub" } })).toBe("params.data.root");
    expect(fieldOf("train", { ...base, data: { kind: "bogus" } })).toBe("params.data.kind");
    expect(fieldOf("train", { ...base, model: { kind: "convnet", channels: [0] } })).toBe("params.model.channels.0");
    expect(fieldOf("train", { ...base, schedule: { kind: "cosine", warmup_steps: -1 } })).toBe("params.schedule.warmup_steps");
    expect(fieldOf("evaluate", { model: "m", data: { kind: "synthetic", dim: 0 } })).toBe("params.data.dim");
  });

  it("bounds every size", () => {
    expect(fieldOf("train", { ...base, batch: { per_class: 1e9 } })).toBe("params.batch.per_class");
    expect(fieldOf("train", { ...base, data: { kind: "synthetic", per_mode: 1e9 } })).toBe("params.data.per_mode");
    expect(fieldOf("train", { ...base, model: { kind: "mlp", hidden: [1e12] } })).toBe("params.model.hidden.0");
    expect(fieldOf("train", { ...base, model: { kind: "mlp", hidden: [-5] } })).toBe("params.model.hidden.0");
    expect(fieldOf("train", { ...base, eval: { ks: [1e9] } })).toBe("params.eval.ks.0");
    expect(fieldOf("train", { ...base, steps: 1e12 })).toBe("params.steps");
    expect(fieldOf("train", { ...base, memory_budget: 10 })).toBe("params.memory_budget");
  });

  it("accepts valid configs of every kind", () => {
    expect(fieldOf("train", base)).toBeUndefined();
    expect(fieldOf("train", { data: { kind: "cub", root: "/data/cub" }, model: { kind: "resnet50" }, schedule: { kind: "step" } })).toBeUndefined();
    expect(fieldOf("train", { data: { kind: "mnist", per_digit: 100 }, model: { kind: "convnet" }, memory_budget: 2 ** 32 })).toBeUndefined();
    expect(fieldOf("evaluate", { model: "m", data: { kind: "synthetic" } })).toBeUndefined();
  });
});
