/**
 * Where CLI commands write, so `run(argv)` can be driven by tests without touching the
 * process's own streams.
 * @internal
 */
import type { Writable } from "node:stream";
import { ZodError } from "zod";
import { NearposError } from "../errors.ts";
import { issueLine, SuiteError } from "../bench/suite.ts";

/** Output streams of the CLI. */
export interface CliIO {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean; columns?: number };
}

/** The process's own streams. */
export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr };
}

/** Raised by a command to end with a given exit code after printing its own message. */
export class CliExit extends Error {
  constructor(readonly exitCode: number, message = "") {
    super(message);
  }
}

/** Exit codes: 0 ok, 1 failure while running, 2 bad input (options, suite file). */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Prints any error in a readable form (JSON with --json) and returns the exit code. */
export function handleError(err: unknown, io: CliIO, json = false): number {
  if (err instanceof CliExit) {
    if (err.message) io.stderr.write(`${err.message}\n`);
    return err.exitCode;
  }
  let code: number = EXIT.failure;
  let payload: Record<string, unknown>;
  let text: string;
  if (err instanceof SuiteError) {
    code = EXIT.usage;
    payload = { error: err.code, file: err.file, issues: err.issues };
    text = `error: invalid suite ${err.file}\n${err.issues.map((i) => `  ${issueLine(i)}`).join("\n")}`;
  } else if (err instanceof ZodError) {
    code = EXIT.usage;
    const issues = err.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    payload = { error: "invalid_options", issues };
    text = `error: invalid options\n${issues.map((i) => `  --${i.path.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${i.message}`).join("\n")}`;
  } else if (err instanceof NearposError) {
    payload = { error: err.code, message: err.message, context: err.context, hint: err.hint };
    text = `error [${err.code}]: ${err.message}${err.hint ? `\nhint: ${err.hint}` : ""}`;
  } else {
    const e = err instanceof Error ? err : new Error(String(err));
    payload = { error: "failed", message: e.message };
    text = `error: ${e.message}`;
  }
  if (json) io.stdout.write(`${JSON.stringify(payload)}\n`);
  else io.stderr.write(`${text}\n`);
  return code;
}
