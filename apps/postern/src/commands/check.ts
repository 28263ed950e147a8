// `postern check`: loads and validates the config the way `start` would, without listening, and
// shows what would run: each listener and, per hook, the plugins in the order they run.
import { createLogger, createServer, type HookInfo, type ServerConfig } from "@postern/core";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configOptionsHelp, configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { reportPreflight } from "../preflight/report.ts";
import { UsageError } from "../usage-error.ts";
import { workerCountFrom } from "../workers/worker-count.ts";

function formatListener(listener: ServerConfig["listeners"][number]): string {
  const host = listener.address.includes(":") ? `[${listener.address}]` : listener.address;
  const name = listener.name ? `  (${listener.name})` : "";
  return `  ${`${host}:${listener.port}`.padEnd(22)} tls ${listener.tls.padEnd(9)} auth ${listener.auth}${name}`;
}

const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** One handler as `plugin (pre, 5s)`: its order when it has one, and its deadline. */
function formatHandler(handler: HookInfo["handlers"][number]): string {
  return `${handler.plugin} (${[handler.order, seconds(handler.timeoutMs)].filter(Boolean).join(", ")})`;
}

export function describeConfig(config: ServerConfig, hooks: readonly HookInfo[]): string {
  const lines = [`hostname ${config.hostname}`, "listeners:"];
  lines.push(...config.listeners.map(formatListener));
  lines.push("plugins:");
  lines.push(...(config.plugins.length > 0 ? config.plugins.map((plugin) => `  ${plugin.name}`) : ["  (none)"]));
  lines.push("hooks (first: the first answer ends the chain; all: every plugin runs), plugins in the order they run:");
  const names = hooks.map((hook) => `${hook.set}.${hook.hook}`);
  const width = Math.max(...names.map((name) => name.length));
  hooks.forEach((hook, index) => {
    const handlers = hook.handlers.length > 0 ? hook.handlers.map(formatHandler).join(", ") : "(none)";
    lines.push(`  ${names[index]!.padEnd(width)}  ${hook.combine.padEnd(5)}  ${handlers}`);
  });
  return lines.join("\n");
}

export const check: Command = {
  name: "check",
  summary: "validate the config and show listeners and plugin order, without listening",
  usage: `Usage: postern check [-c <file>] [--strict] [--workers <n>|auto] [--domain <domain>]...

Loads the config exactly as \`postern start\` would and validates it without opening a port, then
checks what the server will depend on: TLS certificates and keys read and matched (expiry, host
name), the spool and Maildir roots writable and on a real file system, DKIM key files, the DNS
servers answering. It warns about a config with no plugin claiming recipients or storing mail, and
about relay settings that make an open relay. With --workers N it checks the config for
\`postern start --workers N\`: an outbound filesystem queue is an error (one process owns a spool;
use the PostgreSQL queue), and state kept per process (in-memory rate limits and greylisting,
metrics, the admin UI's history) is a warning. Every problem is one line on stderr (naming the
file and the key), all of them in one run. Prints the listeners and, for each hook, the plugins in
the order they run. Exits 0 when there are no errors, 1 otherwise.

Options:
${configOptionsHelp}
  --strict              treat warnings as errors (exit 1)
  --workers <n>|auto    check for \`postern start --workers <n>\` (default 1)
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      ...configOptions,
      strict: { type: "boolean" },
      workers: { type: "string" },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const workers = workerCountFrom(values.workers);
    const loaded = await loadConfig(configRequestFrom(values));
    const verdict = await reportPreflight(loaded, {
      network: true,
      workers,
      strict: values.strict ?? false,
      command: "postern check",
    });
    if (verdict.failed) return 1;
    const { config, source } = loaded;
    const server = createServer(config, { logger: createLogger({ level: "silent" }) });
    process.stdout.write(`${source}: valid\n${describeConfig(server.config, server.hookTable())}\n`);
    return 0;
  },
};
