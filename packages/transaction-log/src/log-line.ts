// The one log line per transaction, as Postfix's per-message lines let an operator grep one
// message's story by its queue ID: the record flattened into short fields, durations rounded, the
// trail as one string per hook call ("rcptTo @postern/recipients reject 550 5.7.1 … 0.21ms").
import type { TrailStep, TransactionRecord } from "./recorder.ts";

export type TrailDetail = "answers" | "all" | "none";

const ms = (value: number) => Math.round(value * 100) / 100;

export function trailEntry(step: TrailStep): string {
  const set = step.set === "smtp" ? "" : `${step.set}.`;
  const detail = step.reply ?? step.error;
  return `${set}${step.hook} ${step.plugin} ${step.verdict}${detail ? ` ${detail}` : ""} ${ms(step.durationMs)}ms`;
}

/** The fields of the log line; `trail` says which hook calls it names. */
export function logFields(record: TransactionRecord, trail: TrailDetail): Record<string, unknown> {
  const steps =
    trail === "none" ? [] : trail === "all" ? record.trail : record.trail.filter((step) => step.verdict !== "-");
  return {
    queueId: record.queueId,
    session: record.session,
    outcome: record.outcome,
    listener: record.listener,
    client: record.client.address,
    clientPort: record.client.port,
    clientName: record.client.hostname,
    helo: record.helo,
    tls: record.tls ? `${record.tls.protocol} ${record.tls.cipher}` : undefined,
    user: record.user,
    from: record.from,
    rcpt: record.recipients.map((recipient) => ({
      to: recipient.address,
      ...(recipient.original !== recipient.address ? { orig: recipient.original } : {}),
      outcome: recipient.outcome,
      ...(recipient.route ? { route: recipient.route } : {}),
      ...(recipient.reply ? { reply: recipient.reply } : {}),
    })),
    size: record.size,
    delays: { session: ms(record.delays.sessionMs), transaction: ms(record.delays.transactionMs) },
    ...(trail === "none" ? {} : { trail: steps.map(trailEntry) }),
    reply: record.reply,
    reason: record.reason,
  };
}
