import { defineConfig } from "vitest/config";

// Native addons (zeromq) and child processes: the forks pool isolates them.
export default defineConfig({
  test: {
    include: ["ts/**/*.test.ts", "benchmarks/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
