import { describe, expect, it } from "vitest";
import { expandSuite, loadSuite } from "./suite.ts";
import { lossKnown, validateLosses } from "./validate.ts";

describe("loss names against hello's plugins[].losses", () => {
  const { suite } = loadSuite("tiny");
  const withLoss = (name: string) => expandSuite({ ...suite, losses: [{ ...suite.losses[0]!, name }] });
  const plugins = (losses?: string[]) => ["semihard", "nearest-positive"].map((name) => ({ name, losses }));

  it("patterns ending in * match by prefix, other entries exactly", () => {
    expect(lossKnown("pml:CircleLoss", ["triplet", "pml:*"])).toBe(true);
    expect(lossKnown("pml:CircleLoss", ["triplet", "pml:TripletMarginLoss"])).toBe(false);
    expect(lossKnown("triplets", ["triplet"])).toBe(false);
  });

  it("an unknown loss is reported once per suite path with the known losses", () => {
    const issues = validateLosses(plugins(["triplet", "margin", "pml:*"]), withLoss("tripplet"));
    expect(issues.map((i) => i.path)).toEqual(["$.losses[0].name"]);
    expect(issues[0]!.message).toBe('unknown loss "tripplet" for sampler "semihard"; known losses: "triplet", "margin", "pml:*"');
  });

  it("pml:<Class> passes only when the plugin reports pml:*; a plugin without a list is not checked", () => {
    expect(validateLosses(plugins(["triplet", "pml:*"]), withLoss("pml:CircleLoss"))).toEqual([]);
    expect(validateLosses(plugins(["triplet"]), withLoss("pml:CircleLoss"))).toHaveLength(1);
    expect(validateLosses(plugins(undefined), withLoss("anything"))).toEqual([]);
  });
});
