// `postern status`: what the running server says about itself over its admin API — its versions,
// listeners, sessions open, transactions since start, the queue, uptime, plugins.

import { adminAccessOf, adminGet } from "../admin-client.ts";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { formatTable } from "../text-table.ts";
import { UsageError } from "../usage-error.ts";

const options = { config: { type: "string", short: "c" }, json: { type: "boolean" } } as const;

interface Status {
  hostname: string;
  node: string;
  pid: number;
  startedAt: number;
  uptimeSeconds: number;
  listeners: { name: string; address: string; port: number; tls: string }[];
  sessions: number;
  transactions: Record<string, number>;
  queue?: { messages: number; queued: number; deferred: number; active: number; oldestCreatedAt?: number };
  plugins: string[];
  versions: { core?: string; admin?: string; node: string };
}

export function uptime(seconds: number): string {
  const days = Math.floor(seconds / 86_400);
  const hours = Math.floor((seconds % 86_400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return days > 0 ? `${days}d ${hours}h` : hours > 0 ? `${hours}h ${minutes}m` : `${minutes}m ${seconds % 60}s`;
}

export const status: Command = {
  name: "status",
  summary: "what the running server reports over its admin API: listeners, sessions, queue, uptime",
  usage: `Usage: postern status [-c <file>] [--json]

Asks the running server (its @postern/admin API, as configured in the config file) for its
versions, listeners, the sessions open now, the transactions since it started, the outbound queue, its
uptime and plugins. The admin plugin's token file and certificate are read from the config.

Options:
  -c, --config <file>   config file (default: the first postern.config.* or postern.yaml found)
  --json                print the answer as JSON
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const { config, source } = await loadConfig(configRequestFrom({ config: values.config }));
    const access = adminAccessOf(config.plugins);
    if (!access) {
      process.stderr.write(`postern status: ${source} has no @postern/admin plugin (status is read over its API)\n`);
      return 1;
    }
    let answer: Status;
    try {
      answer = await adminGet<Status>(access, "/api/status");
    } catch (error) {
      process.stderr.write(`postern status: ${(error as Error).message}\n`);
      return 1;
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      return 0;
    }
    const transactions = Object.entries(answer.transactions)
      .map(([outcome, count]) => `${count} ${outcome}`)
      .join(", ");
    const queue = answer.queue
      ? `${answer.queue.messages} messages, ${answer.queue.queued} recipients (${answer.queue.deferred} deferred, ${answer.queue.active} active)`
      : "no outbound queue";
    const facts = [
      ["node", `${answer.node} (${answer.hostname}), pid ${answer.pid}`],
      [
        "version",
        `@postern/core ${answer.versions.core ?? "unknown"}, @postern/admin ${answer.versions.admin ?? "unknown"}, Node.js ${answer.versions.node}`,
      ],
      ["up", `${uptime(answer.uptimeSeconds)} since ${new Date(answer.startedAt).toISOString()}`],
      ["sessions", `${answer.sessions} open`],
      ["transactions", transactions || "none yet"],
      ["queue", queue],
      ["plugins", answer.plugins.join(", ")],
    ];
    process.stdout.write(`${formatTable(facts)}\n\n`);
    const listeners = [
      ["listener", "address", "tls"],
      ...answer.listeners.map((listener) => [
        listener.name,
        `${listener.address.includes(":") ? `[${listener.address}]` : listener.address}:${listener.port}`,
        listener.tls,
      ]),
    ];
    process.stdout.write(`${formatTable(listeners)}\n`);
    return 0;
  },
};
