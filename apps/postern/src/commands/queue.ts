// `postern queue`: the operator's view of @postern/outbound's delivery queue — list, show one
// message, retry now, hold and release, delete, stats. It opens the queue the config describes
// (the filesystem spool or PostgreSQL); while a server owns a filesystem spool, changes are handed
// to it.

import { PosternError } from "@postern/core";
import type { OutboundPlugin, QueuedMessage, QueueStore, RecipientRecord } from "@postern/outbound";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configOptionsHelp, configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { UsageError } from "../usage-error.ts";

const options = {
  ...configOptions,
  all: { type: "boolean", default: false },
  json: { type: "boolean", default: false },
  limit: { type: "string" },
} as const;

const subcommands = ["list", "show", "retry", "hold", "release", "delete", "stats"] as const;
type Subcommand = (typeof subcommands)[number];

function age(from: number, now = Date.now()): string {
  const seconds = Math.max(0, Math.round((now - from) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400)
    return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(seconds / 86_400)}d${Math.floor((seconds % 86_400) / 3600)}h`;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)}K`;
  return `${(bytes / 1024 / 1024).toFixed(1)}M`;
}

function recipientLine(recipient: RecipientRecord, now: number): string {
  const parts = [`    ${recipient.address}`, recipient.state];
  if (recipient.state === "queued") {
    parts.push(recipient.nextAttemptAt <= now ? "due now" : `next in ${age(now, recipient.nextAttemptAt)}`);
  }
  parts.push(`${recipient.attempts} attempt${recipient.attempts === 1 ? "" : "s"}`);
  const reply = recipient.lastReply;
  if (reply) parts.push(`${reply.code} ${reply.status} ${reply.text}${reply.remote ? ` (${reply.remote})` : ""}`);
  return parts.join("  ");
}

function messageHead(message: QueuedMessage, now: number): string {
  const flags = [message.kind === "dsn" ? "report" : "", message.requireTls ? "REQUIRETLS" : ""].filter(Boolean);
  return [
    message.id,
    size(message.size).padStart(7),
    `${age(message.createdAt, now)} ago`.padStart(9),
    `<${message.from}>`,
    ...(flags.length > 0 ? [`[${flags.join(", ")}]`] : []),
  ].join("  ");
}

/** A few header fields of the stored message, for `show`. */
async function headerSummary(store: QueueStore, id: string): Promise<string[]> {
  const chunks: Buffer[] = [];
  let length = 0;
  const body = await store.body(id);
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      length += chunk.length;
      if (Buffer.concat(chunks).includes("\r\n\r\n") || length > 256 * 1024) break;
    }
  } finally {
    body.destroy();
  }
  const head = Buffer.concat(chunks).toString("utf8").split("\r\n\r\n")[0] ?? "";
  const unfolded = head.replace(/\r\n[ \t]+/g, " ").split("\r\n");
  const wanted = ["from", "to", "subject", "date", "message-id"];
  return unfolded.filter((line) => wanted.includes(line.slice(0, line.indexOf(":")).toLowerCase()));
}

function isSharedSpool(store: QueueStore): boolean {
  return (store as { owner?: boolean }).owner === false;
}

async function run(
  store: QueueStore,
  subcommand: Subcommand,
  args: string[],
  values: { all: boolean; json: boolean; limit?: string | undefined },
): Promise<number> {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const now = Date.now();
  const handedOver = isSharedSpool(store) ? " (handed to the server that owns the spool; applied within a second)" : "";
  const needId = () => {
    if (args.length !== 1) throw new UsageError(`postern queue ${subcommand} needs one queue ID`);
    return args[0]!;
  };
  switch (subcommand) {
    case "list": {
      if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
      const limit = values.limit === undefined ? undefined : Number(values.limit);
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
        throw new UsageError(`--limit: expected a positive whole number (got "${values.limit}")`);
      }
      const messages = await store.list(limit === undefined ? {} : { limit });
      if (values.json) {
        out(JSON.stringify(messages, null, 2));
        return 0;
      }
      if (messages.length === 0) {
        out("queue is empty");
        return 0;
      }
      let queued = 0;
      for (const message of messages) {
        out(messageHead(message, now));
        for (const recipient of message.recipients) {
          if (recipient.state === "queued") queued++;
          out(recipientLine(recipient, now));
        }
      }
      out(
        `-- ${messages.length} message${messages.length === 1 ? "" : "s"}, ${queued} recipient${queued === 1 ? "" : "s"} to deliver`,
      );
      return 0;
    }
    case "show": {
      const id = needId();
      const message = await store.get(id);
      if (!message) {
        process.stderr.write(`postern queue: no message ${id} in the queue\n`);
        return 1;
      }
      if (values.json) {
        out(JSON.stringify(message, null, 2));
        return 0;
      }
      out(messageHead(message, now));
      out(
        `  arrived ${new Date(message.createdAt).toISOString()}, body ${message.bodyType}${message.smtpUtf8 ? ", SMTPUTF8" : ""}`,
      );
      if (message.dsn?.envid || message.dsn?.ret)
        out(`  DSN: RET=${message.dsn.ret ?? "-"} ENVID=${message.dsn.envid ?? "-"}`);
      for (const line of await headerSummary(store, id).catch(() => [])) out(`  ${line}`);
      out("  recipients:");
      for (const recipient of message.recipients) out(recipientLine(recipient, now));
      return 0;
    }
    case "retry": {
      if (values.all && args.length > 0)
        throw new UsageError("postern queue retry takes a queue ID or --all, not both");
      if (!values.all && args.length !== 1) throw new UsageError("postern queue retry needs a queue ID or --all");
      const id = values.all ? undefined : args[0]!;
      if (id !== undefined && !(await store.get(id))) {
        process.stderr.write(`postern queue: no message ${id} in the queue\n`);
        return 1;
      }
      const count = await store.retry(id);
      out(`${count} recipient${count === 1 ? "" : "s"} due for delivery now${handedOver}`);
      return 0;
    }
    case "hold":
    case "release": {
      const id = needId();
      if (!(await store.get(id))) {
        process.stderr.write(`postern queue: no message ${id} in the queue\n`);
        return 1;
      }
      const count = subcommand === "hold" ? await store.hold(id) : await store.unhold(id);
      out(
        `${count} recipient${count === 1 ? "" : "s"} of ${id} ${subcommand === "hold" ? "on hold" : "released, due now"}${handedOver}`,
      );
      return 0;
    }
    case "delete": {
      const id = needId();
      if (!(await store.delete(id))) {
        process.stderr.write(`postern queue: no message ${id} in the queue\n`);
        return 1;
      }
      out(`deleted ${id}${handedOver}`);
      return 0;
    }
    case "stats": {
      if (args.length > 0) throw new UsageError(`unexpected argument "${args[0]}"`);
      const stats = await store.stats();
      if (values.json) {
        out(JSON.stringify({ store: store.kind, ...stats }, null, 2));
        return 0;
      }
      out(`store       ${store.kind}`);
      out(`messages    ${stats.messages}`);
      out(
        `recipients  ${stats.queued} to deliver (${stats.deferred} deferred, ${stats.active} being delivered), ${stats.held} on hold`,
      );
      out(`oldest      ${stats.oldestCreatedAt === undefined ? "-" : `${age(stats.oldestCreatedAt, now)} ago`}`);
      if (stats.domains.length > 0) {
        out("by domain:");
        for (const { domain, queued } of stats.domains.slice(0, 20)) out(`  ${String(queued).padStart(7)}  ${domain}`);
      }
      return 0;
    }
  }
}

export const queue: Command = {
  name: "queue",
  summary: "the outbound delivery queue: list, show, retry, hold, release, delete, stats",
  usage: `Usage: postern queue list [--limit <n>] [--json]
       postern queue show <id> [--json]
       postern queue retry <id> | --all
       postern queue hold <id>
       postern queue release <id>
       postern queue delete <id>
       postern queue stats [--json]

Shows and steers the delivery queue of @postern/outbound, as the config describes it (the
filesystem spool or the PostgreSQL schema shared by the cluster). It works while a server runs:
with a filesystem spool, retry, hold, release and delete are handed to the server that owns the
spool.

  list     every queued message, oldest first, with each recipient's state, attempts, next
           attempt and last reply
  show     one message: envelope, a few header fields, recipients
  retry    make a message's (or, with --all, every) waiting recipient due now
  hold     keep a message's waiting recipients out of delivery (retry leaves them) until released;
           one being delivered at that moment finishes its attempt
  release  put a held message's recipients back, due now
  delete   remove a message without delivering it (no report is sent)
  stats    counts, age of the oldest message, recipients per domain

Options:
${configOptionsHelp}
  --all                 retry: every message
  --limit <n>           list: at most n messages
  --json                list, show, stats: machine-readable output
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const [subcommand, ...args] = positionals;
    if (!subcommand) throw new UsageError(`postern queue needs a subcommand: ${subcommands.join(", ")}`);
    if (!(subcommands as readonly string[]).includes(subcommand)) {
      throw new UsageError(`unknown subcommand "${subcommand}"; expected one of ${subcommands.join(", ")}`);
    }
    const { config, source } = await loadConfig(configRequestFrom(values));
    const plugin = config.plugins.find((candidate) => candidate.name === "@postern/outbound") as
      | OutboundPlugin
      | undefined;
    if (!plugin || typeof plugin.adminStore !== "function") {
      // Not a usage error (exit 2): the command line is fine, the config has no queue (exit 1).
      throw new PosternError(
        "POSTERN_NO_QUEUE",
        `${source} has no @postern/outbound plugin, so there is no delivery queue`,
      );
    }
    const store = plugin.adminStore();
    try {
      await store.open();
      return await run(store, subcommand as Subcommand, args, values);
    } finally {
      await store.close();
      await plugin.close?.();
    }
  },
};
