// `nearpos setup` and `nearpos doctor` through the CLI's run(): an unreachable package index
// fails in seconds and says so, naming the URL; doctor names the interpreter, what it lacks
// and the fix. Real interpreters and a real pip.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "./index.ts";
import { pythonIn, REPO_ROOT, SETUP_COMMAND } from "../runtime/process.ts";

class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function cli(args: string[], cwd?: string): Promise<{ code: number; out: string; err: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const before = process.cwd();
  if (cwd) process.chdir(cwd);
  try {
    const code = await run(args, { io: { stdout, stderr } });
    return { code, out: stdout.text, err: stderr.text };
  } finally {
    process.chdir(before);
  }
}

/** Runs `fn` with these environment variables set (undefined: removed), then restores them. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const repoPython = pythonIn(join(REPO_ROOT, ".venv"));
const work = mkdtempSync(join(tmpdir(), "nearpos-setup-cli-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!existsSync(repoPython))("nearpos setup", () => {
  it("an unreachable package index fails in seconds, naming the URL and what to do, and records nothing", async () => {
    const project = join(work, "unreachable");
    rmSync(project, { recursive: true, force: true });
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, "package.json"), "{}\n");
    const t0 = Date.now();
    // pip's only index: a closed port (its configuration files are left out).
    const r = await withEnv({ PIP_CONFIG_FILE: "/dev/null", PIP_INDEX_URL: "http://127.0.0.1:9/simple", PIP_EXTRA_INDEX_URL: "", PIP_FIND_LINKS: "", NEARPOS_TORCH_SPEC: undefined }, () =>
      cli(["setup", "--seed-from", repoPython, "--torch", "torch==2.99.0"], project),
    );
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`error: nearpos setup could not install torch==2.99.0 into ${pythonIn(join(project, ".nearpos", "venv"))}: a package index cannot be reached`);
    expect(r.err).toContain("http://127.0.0.1:9/simple/torch/");
    expect(r.err).toMatch(/hint: check pip's indexes/);
    expect(r.err).toContain("[nearpos setup] (2/4) torch: torch==2.99.0");
    expect(existsSync(join(project, ".nearpos", "setup.json"))).toBe(false);
  }, 120_000);

  it("refuses --venv with --python (usage error)", async () => {
    const r = await cli(["setup", "--venv", join(work, "v"), "--python", repoPython]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("give --venv or --python, not both");
  });
});

describe.skipIf(!existsSync(repoPython))("nearpos doctor", () => {
  it("says which interpreter, torch and runtime are used, and exits 0 when ready", async () => {
    const r = await withEnv({ NEARPOS_PYTHON: undefined }, () => cli(["doctor", "--json"], REPO_ROOT));
    expect(r.code).toBe(0);
    const d = JSON.parse(r.out) as { ready: boolean; python: string; source: string; report: { versions: Record<string, string | null>; torch: { version: string } } };
    expect(d).toMatchObject({ ready: true, python: repoPython, source: "repository" });
    expect(d.report.torch.version).toMatch(/^2\./);
    expect(d.report.versions["nearpos-runtime"]).toBe("0.1.0");
  }, 120_000);

  it("names a missing interpreter and the command that fixes it, and exits 1", async () => {
    const missing = join(work, "no-python");
    const r = await cli(["doctor", "--python", missing]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`interpreter: ${missing}`);
    expect(r.out).toMatch(/^not ready: cannot start the nearpos runtime: the Python interpreter .* was not found/m);
    expect(r.out).toMatch(new RegExp(`^fix: ${SETUP_COMMAND}$`, "m"));
  }, 60_000);
});
