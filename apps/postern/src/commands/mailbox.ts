// `postern mailbox list|show|delete|prune`: read and tidy the mail @postern/store-postgres stored,
// using the database and schema of the plugin in the config — from any machine that can reach the
// database, with or without a server running.
import type { StoredMessage } from "@postern/store-postgres";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { importOptional } from "../optional-package.ts";
import { formatTable } from "../text-table.ts";
import { UsageError } from "../usage-error.ts";

const options = {
  config: { type: "string", short: "c" },
  limit: { type: "string" },
  after: { type: "string" },
  days: { type: "string" },
} as const;

function table(copies: StoredMessage[]): string {
  const rows = [
    ["id", "received", "from", "size", "subject"],
    ...copies.map((copy) => [
      copy.id,
      copy.receivedAt.toISOString().replace(/\.\d+Z$/, "Z"),
      copy.mailFrom === "" ? "<>" : copy.mailFrom,
      String(copy.size),
      copy.subject ?? "",
    ]),
  ];
  return formatTable(rows);
}

function positiveNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0)
    throw new UsageError(`--${name}: expected a positive number, got "${value}"`);
  return number;
}

export const mailbox: Command = {
  name: "mailbox",
  summary: "list, show, delete or prune the messages @postern/store-postgres stored",
  usage: `Usage: postern mailbox list <address> [--limit <n>] [--after <id>] [-c <file>]
       postern mailbox show <id> [-c <file>]
       postern mailbox delete <id>... [-c <file>]
       postern mailbox prune --days <n> [-c <file>]

Reads the PostgreSQL store of the @postern/store-postgres plugin in the config (its database and
schema). list prints a mailbox oldest first (page with --after <last id>); show writes one message,
exactly as stored, to stdout; delete removes copies (a message goes with its last copy); prune
deletes messages received more than <n> days ago.

Options:
  -c, --config <file>   config file (default: the first postern.config.* or postern.yaml found)
  --limit <n>           list at most n messages (default 100)
  --after <id>          list messages after this ID
  --days <n>            prune: age in days
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const [action, ...rest] = positionals;
    if (action !== "list" && action !== "show" && action !== "delete" && action !== "prune") {
      throw new UsageError('expected "list", "show", "delete" or "prune"');
    }
    if ((action === "list" || action === "show") && rest.length !== 1) {
      throw new UsageError(action === "list" ? "expected one mailbox address" : "expected one message ID");
    }
    if (action === "delete" && rest.length === 0) throw new UsageError("expected the IDs of the messages to delete");
    if (action === "prune" && rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
    const days = positiveNumber(values.days, "days");
    if (action === "prune" && days === undefined) throw new UsageError("prune: expected --days <n>");
    const limit = positiveNumber(values.limit, "limit");

    const { config, source } = await loadConfig(configRequestFrom({ config: values.config }));
    const plugin = config.plugins.find((candidate) => candidate.name === "@postern/store-postgres");
    const { openPostgresMailStoreFor } = await importOptional<typeof import("@postern/store-postgres")>(
      "@postern/store-postgres",
      "postern mailbox",
    );
    const store = plugin && openPostgresMailStoreFor(plugin);
    if (!store) {
      process.stderr.write(`postern mailbox: ${source} has no @postern/store-postgres plugin\n`);
      return 1;
    }
    try {
      switch (action) {
        case "list": {
          const copies = await store.list(rest[0]!, { limit: limit ?? 100, after: values.after });
          process.stdout.write(copies.length === 0 ? `no messages for ${rest[0]}\n` : `${table(copies)}\n`);
          return 0;
        }
        case "show": {
          if (!(await store.get(rest[0]!))) {
            process.stderr.write(`postern mailbox: no message with ID ${rest[0]}\n`);
            return 1;
          }
          for await (const chunk of store.stream(rest[0]!)) {
            if (!process.stdout.write(chunk as Buffer))
              await new Promise((resolve) => process.stdout.once("drain", resolve));
          }
          return 0;
        }
        case "delete": {
          let missing = 0;
          for (const id of rest) {
            const deleted = await store.delete(id);
            if (!deleted) missing++;
            process.stdout.write(deleted ? `deleted ${id}\n` : `no message with ID ${id}\n`);
          }
          return missing > 0 ? 1 : 0;
        }
        case "prune": {
          const deleted = await store.deleteOlderThan(days!);
          process.stdout.write(`deleted ${deleted} message(s) received more than ${days} day(s) ago\n`);
          return 0;
        }
      }
    } finally {
      await store.close();
    }
  },
};
