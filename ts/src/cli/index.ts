/**
 * The `nearpos` command line. `run(argv)` is pure: it returns the exit code and never calls
 * process.exit (only ts/src/cli/bin.ts does).
 * @internal
 */
import { Command, CommanderError } from "commander";
import { packageVersion } from "../runtime/process.ts";
import { benchCommand, defaultBackend, type BackendFactory } from "./commands/bench.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { infoCommand } from "./commands/info.ts";
import { setupCommand } from "./commands/setup.ts";
import { EXIT, handleError, processIO, type CliIO } from "./io.ts";

/** Options of {@link run}. */
export interface RunOptions {
  io?: CliIO;
  /** How `bench` starts its runtime (default: a real runtime process). */
  backend?: BackendFactory;
}

/**
 * Runs the CLI on `argv` (the arguments after the program name).
 * @returns the exit code: 0 ok, 1 failure, 2 bad input
 */
export async function run(argv: readonly string[], options: RunOptions = {}): Promise<number> {
  const io = options.io ?? processIO();
  let exitCode: number = EXIT.ok;
  const setExit = (c: number) => {
    exitCode = c;
  };
  const program = new Command("nearpos")
    .description("nearpos: metric learning that keeps the structure inside each class")
    .version(packageVersion(), "-V, --version")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError();
  for (const c of [benchCommand(io, setExit, options.backend ?? defaultBackend), infoCommand(io, setExit), setupCommand(io, setExit), doctorCommand(io, setExit)]) {
    c.exitOverride().configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
    for (const sub of c.commands) sub.exitOverride().configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
    program.addCommand(c);
  }
  const json = argv.includes("--json");
  try {
    await program.parseAsync([...argv], { from: "user" });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end with exit code 0; usage mistakes with 2.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    return handleError(err, io, json);
  }
}
