// `postern trace QUEUE-ID`: one message's story from the running server's admin API — how it was
// received (client, HELO, TLS, AUTH, sender, each recipient's outcome, every plugin's answer with
// its duration, the final reply) and, while it is queued, each recipient's delivery state.

import { AdminRequestError, adminAccessOf, adminGet } from "../admin-client.ts";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { formatTable } from "../text-table.ts";
import { UsageError } from "../usage-error.ts";

const options = { config: { type: "string", short: "c" }, json: { type: "boolean" } } as const;

interface TraceRecord {
  queueId: string;
  node: string;
  outcome: string;
  startedAt: number;
  endedAt: number;
  listener: string;
  client: { address: string; port: number; hostname?: string };
  helo?: string;
  tls?: { protocol: string; cipher: string };
  user?: string;
  from: string;
  recipients: { address: string; original: string; route?: string; outcome: string; reply?: string }[];
  size?: number;
  delays: { sessionMs: number; transactionMs: number };
  trail: {
    set: string;
    hook: string;
    plugin: string;
    verdict: string;
    reply?: string;
    error?: string;
    durationMs: number;
    atMs: number;
  }[];
  reply?: string;
  reason?: string;
}

interface QueuedMessage {
  id: string;
  recipients: {
    address: string;
    state: string;
    attempts: number;
    nextAttemptAt: number;
    lastReply?: { code: number; status: string; text: string; remote?: string };
  }[];
}

const ms = (value: number) => (value < 10 ? value.toFixed(2) : value.toFixed(0));

/** The record as text: facts, recipients, trail. */
export function formatTrace(record: TraceRecord, queued: QueuedMessage | undefined): string {
  const facts = [
    ["queue id", `${record.queueId} (node ${record.node}, listener ${record.listener})`],
    ["outcome", `${record.outcome}${record.reason ? ` (${record.reason})` : ""}`],
    ["reply", record.reply ?? "none (ended before DATA's reply)"],
    [
      "client",
      `${record.client.address}:${record.client.port}${record.client.hostname ? ` (${record.client.hostname})` : ""}`,
    ],
    ["helo", record.helo ?? "-"],
    ["tls", record.tls ? `${record.tls.protocol} ${record.tls.cipher}` : "none"],
    ["auth", record.user ?? "none"],
    ["from", record.from || "<>"],
    ["size", record.size === undefined ? "-" : `${record.size} bytes`],
    [
      "times",
      `${new Date(record.startedAt).toISOString()} → ${new Date(record.endedAt).toISOString()} (${ms(record.delays.transactionMs)} ms)`,
    ],
  ];
  const recipients = [
    ["recipient", "outcome", "route", "reply"],
    ...record.recipients.map((recipient) => [
      recipient.original === recipient.address
        ? recipient.address
        : `${recipient.address} (from ${recipient.original})`,
      recipient.outcome,
      recipient.route ?? "-",
      recipient.reply ?? "",
    ]),
  ];
  const trail = [
    ["at ms", "hook", "plugin", "answer", "took ms", "reply or error"],
    ...record.trail.map((step) => [
      ms(step.atMs),
      `${step.set === "smtp" ? "" : `${step.set}.`}${step.hook}`,
      step.plugin,
      step.verdict === "-" ? "-" : step.verdict,
      ms(step.durationMs),
      step.reply ?? step.error ?? "",
    ]),
  ];
  const parts = [formatTable(facts), formatTable(recipients), formatTable(trail)];
  if (queued) {
    parts.push(
      formatTable([
        ["queued recipient", "state", "attempts", "next attempt", "last reply"],
        ...queued.recipients.map((recipient) => [
          recipient.address,
          recipient.state,
          String(recipient.attempts),
          recipient.state === "queued" ? new Date(recipient.nextAttemptAt).toISOString() : "-",
          recipient.lastReply
            ? `${recipient.lastReply.code} ${recipient.lastReply.status} ${recipient.lastReply.text}`
            : "",
        ]),
      ]),
    );
  }
  return `${parts.join("\n\n")}\n`;
}

export const trace: Command = {
  name: "trace",
  summary: "one message's story from the running server: client, recipients, every plugin's answer, reply",
  usage: `Usage: postern trace <queue-id> [-c <file>] [--json]

Asks the running server (its @postern/admin API) how the message with this queue ID was received:
client, HELO, TLS, AUTH user, sender, each recipient with its outcome, every plugin's answer in
order with its duration, and the final reply; while it is in the outbound queue, each recipient's
attempts and last reply too. The server keeps the recent transactions (the admin plugin's
history option); older ones are in the per-transaction log lines (@postern/transaction-log).

Options:
  -c, --config <file>   config file (default: the first postern.config.* or postern.yaml found)
  --json                print the record as JSON
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const [queueId, ...rest] = positionals;
    if (!queueId) throw new UsageError("expected a queue ID (as in the 250 reply and the log lines)");
    if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
    const { config, source } = await loadConfig(configRequestFrom({ config: values.config }));
    const access = adminAccessOf(config.plugins);
    if (!access) {
      process.stderr.write(`postern trace: ${source} has no @postern/admin plugin (traces are read over its API)\n`);
      return 1;
    }
    const id = encodeURIComponent(queueId);
    let record: TraceRecord;
    try {
      record = await adminGet<TraceRecord>(access, `/api/transactions/${id}`);
    } catch (error) {
      const notFound = error instanceof AdminRequestError && error.status === 404;
      process.stderr.write(
        `postern trace: ${notFound ? `${queueId} is not among the recent transactions the server keeps` : (error as Error).message}\n`,
      );
      return 1;
    }
    const queued = await adminGet<QueuedMessage>(access, `/api/queue/${id}`).catch(() => undefined);
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ transaction: record, queued }, null, 2)}\n`);
      return 0;
    }
    process.stdout.write(formatTrace(record, queued));
    return 0;
  },
};
