/**
 * `nearpos info`: starts the runtime and prints its hello (versions, devices, plugins, methods).
 * @internal
 */
import { Command } from "commander";
import { z } from "zod";
import { Runtime } from "../../runtime/runtime.ts";
import { packageVersion } from "../../runtime/process.ts";
import type { HelloReply } from "../../protocol/messages.ts";
import type { CliIO } from "../io.ts";
import { commanderOptions, option, runtimeOption, runtimeOptionsOf, schemaOf } from "../options.ts";

/** Options of `nearpos info`, declared once (commander's flags and the zod schema). */
export const INFO_OPTIONS = {
  json: option("--json", "print the hello as JSON", z.boolean().default(false)),
  python: runtimeOption("python", "--python <path>", "Python interpreter of the runtime"),
};
export const InfoOptionsSchema = schemaOf(INFO_OPTIONS);

/** Human-readable hello. */
export function formatHello(h: HelloReply): string {
  const lines = [
    `nearpos ${packageVersion()} (Node ${process.version})`,
    `runtime ${h.runtime_version}, protocol ${h.protocol_version}, Python ${h.python}, torch ${h.torch}`,
    `platform ${h.platform}`,
    "devices:",
    ...h.devices.map((d) => `  ${d.type}:${d.index} ${d.name}${d.memory_bytes ? ` (${(d.memory_bytes / 2 ** 30).toFixed(1)} GiB)` : ""}`),
    "plugins:",
    ...(h.plugins.length ? h.plugins.map((p) => `  ${p.name} ${p.version}${p.description ? ` - ${p.description}` : ""}`) : ["  (none)"]),
    ...(h.plugin_errors && h.plugin_errors.length ? ["plugin errors:", ...h.plugin_errors.map((e) => `  ${e.name}: ${e.error}`)] : []),
    `methods: ${h.methods.map((m) => m.name).join(", ")}`,
  ];
  return lines.join("\n");
}

/** Builds the `info` command. */
export function infoCommand(io: CliIO, setExit: (code: number) => void): Command {
  const cmd = new Command("info").description("start the runtime and print its versions, devices and plugins");
  for (const opt of commanderOptions(INFO_OPTIONS)) cmd.addOption(opt);
  return cmd.action(async (raw: Record<string, unknown>) => {
    const opts = InfoOptionsSchema.parse(raw);
    const rt = await Runtime.start(runtimeOptionsOf(INFO_OPTIONS, opts));
    try {
      const hello = rt.hello;
      if (opts.json) {
        const { methods, ...rest } = hello;
        io.stdout.write(`${JSON.stringify({ nearpos: packageVersion(), node: process.version, ...rest, methods: methods.map((m) => m.name) }, null, 2)}\n`);
      } else io.stdout.write(`${formatHello(hello)}\n`);
      setExit(0);
    } finally {
      await rt.close();
    }
  });
}
