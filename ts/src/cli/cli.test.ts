// The CLI's option handling; none of these start a runtime (the backend factory would throw).
import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { run } from "./index.ts";
import { BENCH_OPTIONS, benchCommand, BenchOptionsSchema } from "./commands/bench.ts";
import type { RuntimeOptions } from "../runtime/options.ts";

class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function cli(args: string[]) {
  const stdout = new Capture();
  const stderr = new Capture();
  const code = await run(args, {
    io: { stdout, stderr },
    backend: async () => {
      throw new Error("no runtime in this test");
    },
  });
  return { code, out: stdout.text, err: stderr.text };
}

describe("nearpos CLI options", () => {
  it("rejects bad option values with exit code 2, naming the option and the allowed values", async () => {
    const seeds = await cli(["bench", "--seeds", "1,1"]);
    expect(seeds.code).toBe(2);
    expect(seeds.err).toMatch(/--seeds: at least one seed, all distinct/);
    const device = await cli(["bench", "--device", "tpu"]);
    expect(device.code).toBe(2);
    expect(device.err).toMatch(/--device: .*"cpu"\|"cuda"\|"auto"/);
    const json = await cli(["bench", "--seeds", "x", "--json"]);
    expect(JSON.parse(json.out)).toMatchObject({ error: "invalid_options", issues: [{ path: "seeds" }] });
  });

  it("an unknown suite or command is a usage error", async () => {
    const r = await cli(["bench", "--suite", "no-such-suite"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no such suite; built-in suites: .*mnist-coarse/);
    expect((await cli(["frobnicate"])).code).toBe(2);
  });

  it("lists the built-in suites as JSON, and help exits 0", async () => {
    const r = await cli(["bench", "--list", "--json"]);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out) as { name: string; runs: number }[];
    expect(rows.find((x) => x.name === "mnist-coarse")?.runs).toBe(40); // 4 losses x 2 samplers x 5 seeds
    expect((await cli(["bench", "--help"])).code).toBe(0);
    expect((await cli(["--version"])).out.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe("bench options declared once", () => {
  it("commander's options and the zod schema come from one table", () => {
    const cmd = benchCommand({ stdout: new Capture(), stderr: new Capture() }, () => {}, async () => {
      throw new Error("unused");
    });
    const attributes = cmd.options.filter((o) => o.long !== "--help").map((o) => o.attributeName());
    expect(attributes.sort()).toEqual(Object.keys(BENCH_OPTIONS).sort());
    expect(Object.keys(BenchOptionsSchema.shape).sort()).toEqual(Object.keys(BENCH_OPTIONS).sort());
  });

  it("runtime options are checked by RuntimeOptionsSchema and reach the backend factory", async () => {
    const seen: RuntimeOptions[] = [];
    const stdout = new Capture();
    const stderr = new Capture();
    const backend = async (o: RuntimeOptions) => {
      seen.push(o);
      throw new Error("no runtime in this test");
    };
    expect(await run(["bench", "--suite", "tiny", "--dry-run", "--python", "/opt/py/bin/python3"], { io: { stdout, stderr }, backend })).toBe(1);
    expect(await run(["bench", "--suite", "tiny", "--dry-run"], { io: { stdout, stderr }, backend })).toBe(1);
    expect(seen).toEqual([{ python: "/opt/py/bin/python3" }, {}]);
    const empty = await cli(["bench", "--python", ""]);
    expect(empty.code).toBe(2);
    expect(empty.err).toMatch(/--python: /);
  });
});
