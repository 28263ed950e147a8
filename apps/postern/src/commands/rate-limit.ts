// `postern rate-limit show|reset <key>`: the Redis counters @postern/rate-limit keeps for a client,
// user or domain, read with the Redis settings of the configured plugin; reset lifts the limits.
import type { CounterState } from "@postern/rate-limit";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { importOptional } from "../optional-package.ts";
import { formatTable } from "../text-table.ts";
import { UsageError } from "../usage-error.ts";

const options = { config: { type: "string", short: "c" } } as const;

function duration(ms: number | undefined): string {
  if (ms === undefined) return "-";
  const seconds = Math.ceil(ms / 1000);
  const parts = [
    [Math.floor(seconds / 86_400), "d"],
    [Math.floor((seconds % 86_400) / 3600), "h"],
    [Math.floor((seconds % 3600) / 60), "m"],
    [seconds % 60, "s"],
  ] as const;
  return (
    parts
      .filter(([amount]) => amount > 0)
      .map(([amount, unit]) => `${amount}${unit}`)
      .join(" ") || "0s"
  );
}

function table(states: CounterState[]): string {
  const rows = [
    ["limit", "key", "count", "expires in"],
    ...states.map((state) => [
      state.limit,
      state.key,
      state.slots ? `${state.count} open` : String(state.count),
      duration(state.expiresInMs),
    ]),
  ];
  return formatTable(rows);
}

export const rateLimit: Command = {
  name: "rate-limit",
  summary: "show or reset the Redis counters of @postern/rate-limit for a client, user or domain",
  usage: `Usage: postern rate-limit show|reset <key> [-c <file>]

Shows (or deletes) the counters @postern/rate-limit keeps in Redis for one key, using the Redis
settings of the plugin in the config. <key> is written as in the "rate limit reached" log lines:
  ip=192.0.2.1          an IPv6 address finds the counter of its prefix (ip=2001:db8::1 → /64)
  user=alice            senderDomain=example.com   recipient=bob@example.org   helo=mx.example.net
  user=alice|recipientDomain=example.org           every counter whose key has all these parts
reset deletes the matching counters, which lifts those limits at once (open connections are
forgotten too). Counters kept in memory (no redis option) live inside the running server only.

Options:
  -c, --config <file>   config file (default: the first postern.config.* or postern.yaml found)
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const [action, key, ...rest] = positionals;
    if (action !== "show" && action !== "reset") throw new UsageError('expected "show" or "reset"');
    if (!key) throw new UsageError("expected a key, e.g. ip=192.0.2.1 or user=alice");
    if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
    const { config, source } = await loadConfig(configRequestFrom({ config: values.config }));
    const { RateLimitKeyError, rateLimitCounters } = await importOptional<typeof import("@postern/rate-limit")>(
      "@postern/rate-limit",
      "postern rate-limit",
    );
    const plugin = config.plugins.find((candidate) => candidate.name === "@postern/rate-limit");
    const counters = plugin && rateLimitCounters(plugin);
    if (!counters) {
      process.stderr.write(`postern rate-limit: ${source} has no @postern/rate-limit plugin\n`);
      return 1;
    }
    if (counters.store === "memory") {
      process.stderr.write(
        `postern rate-limit: the rate-limit plugin in ${source} counts in the memory of the running server; set its redis option to share (and inspect) counters\n`,
      );
      return 1;
    }
    try {
      const states = action === "show" ? await counters.find(key) : await counters.reset(key);
      if (states.length === 0) {
        process.stdout.write(`no counters for ${key}\n`);
      } else {
        if (action === "reset") process.stdout.write(`deleted ${states.length} counter(s) for ${key}:\n`);
        process.stdout.write(`${table(states)}\n`);
      }
      return 0;
    } catch (error) {
      if (error instanceof RateLimitKeyError) throw new UsageError(error.message);
      throw error;
    } finally {
      await counters.close();
    }
  },
};
