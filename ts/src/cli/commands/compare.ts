/**
 * `nearpos bench compare A B`: two result folders side by side.
 * @internal
 */
import { Command } from "commander";
import { z } from "zod";
import { compareResults, comparisonTable } from "../../bench/compare.ts";
import type { CliIO } from "../io.ts";
import { commanderOptions, option, schemaOf } from "../options.ts";

/** The options of `nearpos bench compare`, declared once. */
const COMPARE_OPTIONS = {
  json: option("--json", "print the comparison as JSON", z.boolean().default(false)),
};

/** Options of `nearpos bench compare`. */
export const CompareOptionsSchema = schemaOf(COMPARE_OPTIONS);

/** Builds the `compare` subcommand of `bench`. */
export function compareCommand(io: CliIO, setExit: (code: number) => void): Command {
  const command = new Command("compare")
    .description("compare two result folders: same metrics side by side, differences with Welch 95% intervals")
    .argument("<a>", "first result folder")
    .argument("<b>", "second result folder");
  for (const opt of commanderOptions(COMPARE_OPTIONS)) command.addOption(opt);
  return command.action((a: string, b: string, raw: Record<string, unknown>, cmd: Command) => {
    // `--json` after the folders may be taken by the parent `bench` command: read it from both.
    const opts = CompareOptionsSchema.parse({ json: Boolean(raw.json ?? cmd.optsWithGlobals().json) });
    const c = compareResults(a, b);
    io.stdout.write(opts.json ? `${JSON.stringify(c, null, 2)}\n` : `${comparisonTable(c)}\n`);
    setExit(0);
  });
}
