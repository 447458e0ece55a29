/**
 * `nearpos setup`: the Python side of a project that installed the nearpos package. Makes a
 * virtual environment (default `<project>/.nearpos/venv`; or installs into an interpreter
 * the user names), installs torch with the same CPU/CUDA choice as the repository's set-up,
 * then the runtime and the sampler plugin from the Python sources shipped in the package,
 * checks the result, and records it in `<project>/.nearpos/setup.json`, where
 * `Runtime.start` finds it. Idempotent: a second run checks the record and the interpreter
 * and returns.
 * @internal
 */
import { Command } from "commander";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { createHash } from "node:crypto";
import { z } from "zod";
import { StartError } from "../../errors.ts";
import { packageVersion, probeError, probePython, pythonIn, readSetupRecord, STATE_DIR, type ProbeReport, type PythonChoice } from "../../runtime/process.ts";
import { PIP_INSTALL, torchSpec } from "../../../setup/python.mjs";
import { CliExit, EXIT, type CliIO } from "../io.ts";
import { commanderOptions, option, schemaOf } from "../options.ts";
import { writeAtomic } from "../../bench/atomic.ts";
import { copySources, pipFailure, projectDir, runCommand, sourcesDigest, writeSetupRecord } from "../pyenv.ts";

/** The options of `nearpos setup`, each declared once. */
export const SETUP_OPTIONS = {
  venv: option("--venv <dir>", `virtual environment to make or update (default: <project>/${STATE_DIR}/venv)`, z.string().min(1).optional()),
  python: option("--python <path>", "install into this interpreter instead of a virtual environment (its own torch is kept)", z.string().min(1).optional()),
  basePython: option("--base-python <path>", "interpreter that creates the virtual environment", z.string().min(1).default("python3")),
  torch: option("--torch <requirement>", "torch to install (default: env NEARPOS_TORCH_SPEC, else the CPU build where no CUDA is present, else torch)", z.string().min(1).optional()),
  seedFrom: option(
    "--seed-from <python>",
    "let the new virtual environment see the packages of this interpreter's environment (a .pth file) and install only what it lacks: a fast set-up where a complete environment of the same Python version exists",
    z.string().min(1).optional(),
  ),
  force: option("--force", "reinstall even when the set-up is up to date", z.boolean().default(false)),
  quiet: option("--quiet", "print only errors and the final line", z.boolean().default(false)),
};

/** Options of `nearpos setup`. */
export const SetupOptionsSchema = schemaOf(SETUP_OPTIONS);
export type SetupOptions = z.infer<typeof SetupOptionsSchema>;

/** Builds the `setup` command. */
export function setupCommand(io: CliIO, setExit: (code: number) => void): Command {
  const cmd = new Command("setup").description(`make the Python side of this project: a virtual environment in ${STATE_DIR}/venv with torch, the runtime and the sampler plugin`);
  for (const opt of commanderOptions(SETUP_OPTIONS)) cmd.addOption(opt);
  return cmd.action(async (raw: Record<string, unknown>) => {
    const opts = SetupOptionsSchema.parse(raw);
    if (opts.venv && opts.python) throw new CliExit(EXIT.usage, "error: give --venv or --python, not both");
    if (opts.seedFrom && opts.python) throw new CliExit(EXIT.usage, "error: --seed-from seeds a new virtual environment; it does not go with --python");
    await setup(opts, io);
    setExit(EXIT.ok);
  });
}

/** What a set-up made. */
export interface SetupOutcome {
  python: string;
  venv?: string;
  project: string;
  upToDate: boolean;
  report: ProbeReport;
  seconds: number;
}

/** The body of `nearpos setup`. @throws CliExit with a message that says what failed and what to do */
export async function setup(opts: SetupOptions, io: CliIO, cwd: string = process.cwd()): Promise<SetupOutcome> {
  const t0 = Date.now();
  const project = projectDir(cwd);
  const log = (msg: string): void => {
    if (!opts.quiet) io.stderr.write(`[nearpos setup] ${msg}\n`);
  };
  const elapsed = (): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  const venv = opts.python ? undefined : resolve(cwd, opts.venv ?? join(project, STATE_DIR, "venv"));
  // A path is recorded absolute (Runtime.start reads it from any folder); a bare name stays a PATH lookup.
  const python = opts.python ? (opts.python.includes("/") ? resolve(cwd, opts.python) : opts.python) : pythonIn(venv as string);
  const spec = opts.torch ?? torchSpec();
  const version = packageVersion();
  const digest = createHash("sha256")
    .update(JSON.stringify({ python, venv: venv ?? null, torch: opts.python ? null : spec, seed: opts.seedFrom ?? null, version, sources: sourcesDigest() }))
    .digest("hex");
  const choice: PythonChoice = { python, source: "setup", tried: [python] };
  log(`project ${project}; ${venv ? `virtual environment ${relative(cwd, venv) || "."}` : `interpreter ${python}`}`);

  const record = readSetupRecord(project);
  if (!opts.force && record?.digest === digest && (existsSync(python) || !python.includes("/"))) {
    const probe = await probePython(python, { timeoutMs: 30_000 });
    if (probe.ok && !probeError(probe, choice)) {
      log(`up to date (${elapsed()}); --force reinstalls`);
      io.stdout.write(`nearpos setup: ready, ${python} (up to date)\n`);
      return { python, ...(venv ? { venv } : {}), project, upToDate: true, report: probe.report, seconds: (Date.now() - t0) / 1000 };
    }
  }

  const pip = async (what: string, args: string[]): Promise<void> => {
    // pip's debug log says which index URLs could not be fetched; its console does not.
    const logDir = mkdtempSync(join(tmpdir(), "nearpos-pip-"));
    try {
      const out = await runCommand(python, [...PIP_INSTALL, "--log", join(logDir, "pip.log"), ...args], (line) => {
        if (!opts.quiet) io.stderr.write(`  ${line}\n`);
      });
      if (out.code === 0) return;
      const failure = pipFailure(out.tail, existsSync(join(logDir, "pip.log")) ? readFileSync(join(logDir, "pip.log"), "utf8") : "");
      const why =
        failure.kind === "unreachable"
          ? `a package index cannot be reached${failure.unreachable.length ? `:\n${failure.unreachable.slice(0, 5).map((u) => `  ${u}`).join("\n")}` : ""}`
          : failure.kind === "not_found"
            ? "no package index pip reaches has it"
            : `pip exited with ${out.code ?? out.error?.message}`;
      throw new CliExit(
        EXIT.failure,
        [
          `error: nearpos setup could not install ${what} into ${python}: ${why}`,
          ...out.tail.slice(-6).map((l) => `  | ${l}`),
          "hint: check pip's indexes (`pip config list`, PIP_INDEX_URL, PIP_EXTRA_INDEX_URL) and the network;",
          "      --torch <requirement> (or NEARPOS_TORCH_SPEC) picks another torch, --python <interpreter> uses one that already has torch;",
          "      then run `npx nearpos setup` again (what was installed stays)",
        ].join("\n"),
      );
    } finally {
      rmSync(logDir, { recursive: true, force: true });
    }
  };

  const steps = 4;
  if (venv) {
    if (!existsSync(python)) {
      log(`(1/${steps}) creating the virtual environment with ${opts.basePython} -m venv`);
      rmSync(venv, { recursive: true, force: true });
      // Seeded, pip comes from the seed's environment too: no copy of pip to install.
      const made = await runCommand(opts.basePython, ["-m", "venv", ...(opts.seedFrom ? ["--without-pip"] : []), venv], (line) => log(`  ${line}`));
      if (made.code !== 0) {
        rmSync(venv, { recursive: true, force: true });
        throw new CliExit(
          EXIT.failure,
          `error: nearpos setup could not create a virtual environment in ${venv} with ${opts.basePython}: ${made.error?.message ?? made.tail.slice(-3).join(" ")}\n` +
            "hint: install Python 3.10+ with its venv module (Debian/Ubuntu: apt install python3-venv), or pass --base-python <interpreter>",
        );
      }
    } else log(`(1/${steps}) virtual environment exists`);
    if (opts.seedFrom) await seed(opts.seedFrom, python, log);
  } else {
    log(`(1/${steps}) using ${python}`);
  }

  const before = await probePython(python, { timeoutMs: 30_000 });
  if (!before.ok) {
    const err = probeError(before, choice) as StartError;
    throw new CliExit(EXIT.failure, `error: nearpos setup cannot use ${python}: ${whyNot(err)}`);
  }
  const pinned = /^torch==(\S+)$/.exec(spec)?.[1];
  if (pinned !== undefined && before.report.versions.torch === pinned) {
    log(`(2/${steps}) torch: ${spec} is installed`);
  } else if (venv || !before.report.modules.torch) {
    log(`(2/${steps}) torch: ${spec}${before.report.versions.torch ? ` (installed: ${before.report.versions.torch})` : ""} [${elapsed()}]`);
    await pip(spec, [spec]);
  } else log(`(2/${steps}) torch: keeping ${before.report.versions.torch}`);

  const tmp = mkdtempSync(join(tmpdir(), "nearpos-setup-"));
  try {
    const [runtimeDir, pluginDir] = copySources(tmp);
    log(`(3/${steps}) nearpos-runtime ${version} and the nearest-positive plugin, with their dependencies [${elapsed()}]`);
    // Non-editable installs of the shipped sources; a reinstall replaces the previous ones.
    await runCommand(python, ["-m", "pip", "uninstall", "-y", "-q", "nearpos-runtime", "nearest-positive"], () => undefined);
    // Where the interpreter already has the build backend the sources ask for, build with it
    // (pip would otherwise install it afresh into a throwaway environment per package).
    const isolation = (await hasBuildBackend(python, [runtimeDir as string, pluginDir as string])) ? ["--no-build-isolation"] : [];
    await pip("nearpos-runtime and nearest-positive", [...isolation, runtimeDir as string, `${pluginDir as string}[pml]`]);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  log(`(4/${steps}) checking: import torch, the runtime and the plugin [${elapsed()}]`);
  const after = await probePython(python, { timeoutMs: 120_000, deep: true });
  const problem = probeError(after, choice);
  if (problem || !after.ok) {
    throw new CliExit(EXIT.failure, `error: nearpos setup finished, but ${python} still cannot run the runtime: ${whyNot(problem as StartError)}`);
  }
  const report = after.report;
  if (report.torch?.error) throw new CliExit(EXIT.failure, `error: torch does not import in ${python}: ${report.torch.error}`);
  writeSetupRecord(project, {
    python,
    ...(venv ? { venv } : {}),
    ...(venv || !before.report.modules.torch ? { torch: spec } : {}),
    packageVersion: version,
    digest,
    at: new Date().toISOString(),
  });
  const seconds = (Date.now() - t0) / 1000;
  log(`recorded in ${join(project, STATE_DIR, "setup.json")}: Runtime.start() uses this interpreter from anywhere in the project`);
  io.stdout.write(
    `nearpos setup: ready in ${seconds.toFixed(1)} s: ${python} (Python ${report.version}, torch ${report.torch?.version ?? "?"}, ${report.torch?.cuda_available ? `CUDA ${report.torch.cuda}` : "CPU"}, nearpos-runtime ${report.versions["nearpos-runtime"]}, plugins: ${(report.plugins ?? []).join(", ")})\n`,
  );
  return { python, ...(venv ? { venv } : {}), project, upToDate: false, report, seconds };
}

/** A start error's message without its opening words (setup says what it could not do). */
function whyNot(err: StartError): string {
  return err.message.replace(/^cannot start the nearpos runtime: /, "");
}

/** Asks an interpreter a question (a Python expression printed as JSON). */
async function ask<T>(python: string, expression: string): Promise<T> {
  const lines: string[] = [];
  const out = await runCommand(python, ["-c", `import json, site, sys, sysconfig; print(json.dumps(${expression}))`], (l) => lines.push(l));
  if (out.code !== 0) throw new CliExit(EXIT.failure, `error: ${python} did not answer: ${out.error?.message ?? out.tail.slice(-3).join(" ")}`);
  return JSON.parse(lines[lines.length - 1] ?? "null") as T;
}

/** True when `python` has setuptools at least as new as every source's `build-system.requires` asks. */
async function hasBuildBackend(python: string, sources: readonly string[]): Promise<boolean> {
  let needed = 0;
  for (const dir of sources) {
    const requires = /^requires\s*=\s*\[([^\]]*)\]/m.exec(readFileSync(join(dir, "pyproject.toml"), "utf8"))?.[1] ?? "";
    const names = [...requires.matchAll(/"([^"]+)"/g)].map((m) => m[1] as string);
    for (const r of names) {
      const m = /^setuptools\s*>=\s*(\d+)(?:\.\d+)*$/.exec(r);
      if (!m) return false; // anything but "setuptools>=N": leave it to pip
      needed = Math.max(needed, Number(m[1]));
    }
  }
  const lines: string[] = [];
  const out = await runCommand(python, ["-c", "import setuptools; print(setuptools.__version__)"], (l) => lines.push(l));
  const major = Number((lines[lines.length - 1] ?? "").split(".")[0]);
  return out.code === 0 && Number.isFinite(major) && major >= needed;
}

/**
 * Makes the packages of `from`'s environment importable in the virtual environment of
 * `python` through a .pth file in its site-packages (its own packages come first; the .pth
 * files of `from`'s environment, editable installs among them, are not run).
 */
async function seed(from: string, python: string, log: (msg: string) => void): Promise<void> {
  const [theirs, ours] = await Promise.all([
    ask<{ version: string; paths: string[] }>(from, `{"version": "%d.%d" % sys.version_info[:2], "paths": site.getsitepackages()}`),
    ask<{ version: string; purelib: string }>(python, `{"version": "%d.%d" % sys.version_info[:2], "purelib": sysconfig.get_paths()["purelib"]}`),
  ]);
  if (theirs.version !== ours.version) {
    throw new CliExit(EXIT.failure, `error: --seed-from ${from} is Python ${theirs.version}, the virtual environment Python ${ours.version}: packages of one do not fit the other`);
  }
  log(`    seeded from ${from}: ${theirs.paths.join(", ")}`);
  writeAtomic(join(ours.purelib, "nearpos-seed.pth"), `${theirs.paths.join("\n")}\n`);
}
