// `postern check`: loads and validates the config the way `start` would, without listening, and
// shows what would run: each listener and, per hook, the plugins in the order they run.
import { createLogger, createServer, type HookName, type ServerConfig } from "@postern/core";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configOptionsHelp, configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { UsageError } from "../usage-error.ts";

function formatListener(listener: ServerConfig["listeners"][number]): string {
  const host = listener.address.includes(":") ? `[${listener.address}]` : listener.address;
  const name = listener.name ? `  (${listener.name})` : "";
  return `  ${`${host}:${listener.port}`.padEnd(22)} tls ${listener.tls.padEnd(9)} auth ${listener.auth}${name}`;
}

export function describeConfig(config: ServerConfig, hookOrder: Record<HookName, string[]>): string {
  const lines = [`hostname ${config.hostname}`, "listeners:"];
  lines.push(...config.listeners.map(formatListener));
  lines.push("plugins:");
  lines.push(...(config.plugins.length > 0 ? config.plugins.map((plugin) => `  ${plugin.name}`) : ["  (none)"]));
  lines.push("hooks (plugins in the order they run):");
  const width = Math.max(...Object.keys(hookOrder).map((hook) => hook.length));
  for (const [hook, plugins] of Object.entries(hookOrder)) {
    lines.push(`  ${hook.padEnd(width)}  ${plugins.length > 0 ? plugins.join(", ") : "(none)"}`);
  }
  return lines.join("\n");
}

export const check: Command = {
  name: "check",
  summary: "validate the config and show listeners and plugin order, without listening",
  usage: `Usage: postern check [-c <file>] [--domain <domain>]...

Loads the config exactly as \`postern start\` would and validates it without opening a port.
Prints the listeners (address:port, TLS mode, AUTH) and, for each hook, the plugins in the order
they run. Exits 0 when the config is valid, 1 with one line naming the file, the key and what was
expected when it is not.

Options:
${configOptionsHelp}
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, configOptions);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const { config, source } = await loadConfig(configRequestFrom(values));
    const server = createServer(config, { logger: createLogger({ level: "silent" }) });
    process.stdout.write(`${source}: valid\n${describeConfig(server.config, server.hookOrder())}\n`);
    return 0;
  },
};
