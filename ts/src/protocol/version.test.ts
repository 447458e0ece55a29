import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { REPO_ROOT } from "../runtime/process.ts";
import { PROTOCOL_TAG, PROTOCOL_VERSION } from "./version.ts";

it("PROTOCOL_VERSION equals the version in docs/protocol.md", () => {
  const doc = readFileSync(join(REPO_ROOT, "docs", "protocol.md"), "utf8");
  const m = /\*\*Protocol version: (\d+\.\d+)\*\*/.exec(doc);
  expect(m?.[1]).toBeDefined();
  expect(PROTOCOL_VERSION).toBe(m?.[1]);
  expect(PROTOCOL_TAG).toBe(`nearpos/${PROTOCOL_VERSION.split(".")[0]}`);
});
