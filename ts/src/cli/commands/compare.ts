/**
 * `nearpos bench compare A B`: two result folders side by side.
 * @internal
 */
import { Command } from "commander";
import { z } from "zod";
import { compareResults, comparisonTable } from "../../bench/compare.ts";
import type { CliIO } from "../io.ts";

/** Options of `nearpos bench compare`. */
export const CompareOptionsSchema = z.object({ json: z.boolean().default(false) }).strict();

/** Builds the `compare` subcommand of `bench`. */
export function compareCommand(io: CliIO, setExit: (code: number) => void): Command {
  return new Command("compare")
    .description("compare two result folders: same metrics side by side, differences with Welch 95% intervals")
    .argument("<a>", "first result folder")
    .argument("<b>", "second result folder")
    .option("--json", "print the comparison as JSON")
    .action((a: string, b: string, raw: Record<string, unknown>, cmd: Command) => {
      // `--json` after the folders may be taken by the parent `bench` command: read it from both.
      const opts = CompareOptionsSchema.parse({ json: Boolean(raw.json ?? cmd.optsWithGlobals().json) });
      const c = compareResults(a, b);
      io.stdout.write(opts.json ? `${JSON.stringify(c, null, 2)}\n` : `${comparisonTable(c)}\n`);
      setExit(0);
    });
}
