/**
 * The Python side of a project that installed the nearpos package: where it lives, what was
 * installed (the Python sources shipped in the package), running pip with progress, and the
 * record `nearpos setup` leaves for `Runtime.start` to find.
 * @internal
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { writeAtomic } from "../bench/atomic.ts";
import { REPO_ROOT, STATE_DIR, type SetupRecord } from "../runtime/process.ts";

/** The Python packages shipped in this package, installed by `nearpos setup`. */
export const PY_SOURCES = [
  { dir: "py-bridge", package: "nearpos_runtime", files: ["pyproject.toml"] },
  { dir: "plugins/nearest-positive", package: "nearest_positive", files: ["pyproject.toml", "README.md"] },
] as const;

/** The project a command runs for: the nearest folder from `cwd` upward with a package.json, else `cwd`. */
export function projectDir(cwd: string = process.cwd()): string {
  for (let d = resolve(cwd); ; d = dirname(d)) {
    if (existsSync(join(d, "package.json"))) return d;
    if (dirname(d) === d) return resolve(cwd);
  }
}

/** Files of a source tree that are installed: no caches, build metadata or tests. */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      if (name === "__pycache__" || name.endsWith(".egg-info") || name === "tests" || name.endsWith(".pyc")) continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Digest of the shipped Python sources (what a set-up installed). */
export function sourcesDigest(root: string = REPO_ROOT): string {
  const h = createHash("sha256");
  for (const s of PY_SOURCES) {
    for (const f of [...s.files.map((x) => join(root, s.dir, x)), ...sourceFiles(join(root, s.dir, s.package))]) {
      h.update(relative(root, f));
      h.update(readFileSync(f));
    }
  }
  return h.digest("hex");
}

/**
 * Copies the shipped Python packages into `dest` (one folder each, without caches or build
 * metadata), so pip builds them there and never writes into the installed package.
 * @returns the folders to give pip
 */
export function copySources(dest: string, root: string = REPO_ROOT): string[] {
  return PY_SOURCES.map((s) => {
    const to = join(dest, s.dir.split("/").pop() as string);
    mkdirSync(to, { recursive: true });
    for (const f of s.files) cpSync(join(root, s.dir, f), join(to, f));
    for (const f of sourceFiles(join(root, s.dir, s.package))) {
      const target = join(to, relative(join(root, s.dir), f));
      mkdirSync(dirname(target), { recursive: true });
      cpSync(f, target);
    }
    return to;
  });
}

/** Writes `<project>/.nearpos/setup.json` (and a .gitignore keeping the folder out of git). */
export function writeSetupRecord(project: string, record: SetupRecord): void {
  const dir = join(project, STATE_DIR);
  if (!existsSync(join(dir, ".gitignore"))) writeAtomic(join(dir, ".gitignore"), "# nearpos setup: the Python side of this project (a virtual environment); not for version control\n*\n");
  writeAtomic(join(dir, "setup.json"), `${JSON.stringify(record, null, 2)}\n`);
}

/** How a command ended: its exit status and the last lines it wrote to stderr and stdout. */
export interface CommandOutcome {
  code: number | null;
  tail: string[];
  error?: Error;
}

/** Runs a command, passing each output line to `onLine`; never rejects. */
export function runCommand(cmd: string, args: readonly string[], onLine: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<CommandOutcome> {
  return new Promise((res) => {
    const tail: string[] = [];
    const child = spawn(cmd, [...args], { stdio: ["ignore", "pipe", "pipe"], env });
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s, crlfDelay: Infinity }).on("line", (line) => {
        tail.push(line);
        if (tail.length > 30) tail.shift();
        onLine(line);
      });
    }
    let error: Error | undefined;
    child.once("error", (e) => {
      error = e;
    });
    child.once("close", (code) => res({ code: error ? null : code, tail, ...(error ? { error } : {}) }));
  });
}

/** Why a pip install failed, from its output and its debug log (`--log`). */
export interface PipFailure {
  kind: "unreachable" | "not_found" | "other";
  /** Index URLs pip could not fetch, each with the error. */
  unreachable: string[];
}

/**
 * What pip's output and debug log say about a failed install: index URLs that could not be
 * fetched (pip reports these only in its debug log, then says "from versions: none"), or a
 * requirement no reachable index has.
 */
export function pipFailure(tail: readonly string[], log = ""): PipFailure {
  // The innermost reason ("[Errno 111] Connection refused", "Read timed out") reads best.
  const reason = (e: string): string => /\[Errno -?\d+\] [^'"()]+/.exec(e)?.[0].trim() ?? /Read timed out|timed out|Name or service not known|certificate verify failed/i.exec(e)?.[0] ?? e.slice(0, 160);
  const unreachable = [...new Set([...log.matchAll(/Could not fetch URL (\S+?): (.*?)(?: - skipping)?$/gm)].map((m) => `${m[1]} (${reason(m[2] as string)})`))];
  const text = tail.join("\n");
  if (unreachable.length > 0 || /Failed to establish a new connection|Network is unreachable|Temporary failure in name resolution|Name or service not known|Connection refused|ConnectTimeout|Read timed out|ProxyError|SSLError/i.test(text)) return { kind: "unreachable", unreachable };
  if (/No matching distribution found|Could not find a version that satisfies/i.test(text)) return { kind: "not_found", unreachable };
  return { kind: "other", unreachable };
}
