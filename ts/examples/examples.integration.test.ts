import { execFile } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const run = promisify(execFile);

// The examples are documentation: each must run as written.
describe("examples", () => {
  it("train-mnist trains, evaluates and reports coarse and fine metrics", async () => {
    const { stdout } = await run(join(root, "node_modules", ".bin", "tsx"), [join(root, "ts/examples/train-mnist/index.ts"), "30"], {
      cwd: root,
      timeout: 120_000,
    });
    const line = stdout.split("\n").find((l) => l.startsWith("{"));
    expect(line, stdout).toBeDefined();
    const result = JSON.parse(line as string) as { steps: number; metrics: { coarse: Record<string, number>; fine: Record<string, number> } };
    expect(result.steps).toBe(30);
    // 5 coarse classes: chance R@1 is about 0.2; even 30 steps of training are far above it.
    expect(result.metrics.coarse["recall@1"]).toBeGreaterThan(0.5);
    expect(result.metrics.fine["recall@1"]).toBeGreaterThan(0.3);
    expect(stdout).toMatch(/fine-label R@1 \(sub-cluster retention\): 0\.\d+/);
  }, 150_000);
});
