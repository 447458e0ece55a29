import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GENERATED_PATH, render } from "./generate.ts";

describe("generated training types", () => {
  it("match the runtime's pydantic schema (run npx tsx ts/src/training/generate.ts)", () => {
    expect(readFileSync(GENERATED_PATH, "utf8")).toBe(render());
  }, 60_000);
});
