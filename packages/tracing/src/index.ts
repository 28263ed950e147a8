// @postern/tracing — OpenTelemetry spans through @opentelemetry/api: one span per SMTP transaction
// with a child per hook call (plugin, verdict, duration, failure). Without an OpenTelemetry SDK
// registered in the process the API is a no-op and nothing is built.
//
// The spans are made when a transaction ends, from @postern/transaction-log's record, with the
// times the calls really had: core's observer channel reports after the fact, so a tracing
// observer never sits in the SMTP path, and the record is built once for every reader.

import { type Attributes, context, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import { type Plugin, parseOptions } from "@postern/core";
import { recorderFor, type TransactionRecord } from "@postern/transaction-log";
import { z } from "zod";

const pluginName = "@postern/tracing";

export const tracingOptionsSchema = z.strictObject({
  /** The tracer's name (the instrumentation scope). */
  tracerName: z.string().min(1).default(pluginName),
  /** Make a child span for hook calls that answered nothing too (default: only calls that answered or failed). */
  silentHooks: z.boolean().default(false),
});

export type TracingOptions = z.input<typeof tracingOptionsSchema>;

const failed = new Set(["error", "timeout"]);

function transactionAttributes(record: TransactionRecord): Attributes {
  const accepted = record.recipients.filter((recipient) => recipient.outcome === "accepted").length;
  return {
    "postern.queue_id": record.queueId,
    "postern.session_id": record.session,
    "postern.outcome": record.outcome,
    "postern.listener": record.listener,
    "client.address": record.client.address,
    "client.port": record.client.port,
    ...(record.helo ? { "smtp.helo": record.helo } : {}),
    ...(record.tls ? { "tls.protocol.version": record.tls.protocol, "tls.cipher": record.tls.cipher } : {}),
    ...(record.user ? { "enduser.id": record.user } : {}),
    "smtp.mail_from": record.from,
    "smtp.rcpt.accepted": accepted,
    "smtp.rcpt.refused": record.recipients.length - accepted,
    ...(record.size !== undefined ? { "smtp.message.size": record.size } : {}),
    ...(record.reply ? { "smtp.reply": record.reply, "smtp.reply.code": Number(record.reply.slice(0, 3)) } : {}),
  };
}

/** Spans of one record: the transaction, and a child per hook call at the time it ran. */
export function spansOf(tracer: Tracer, record: TransactionRecord, silentHooks: boolean): void {
  // The trail's times count from the session's start; the session began this long before MAIL FROM.
  const sessionStart = record.startedAt - record.delays.sessionMs;
  const steps = record.trail.filter((step) => silentHooks || step.verdict !== "-");
  const firstStep = steps.reduce((earliest, step) => Math.min(earliest, sessionStart + step.atMs), record.startedAt);
  const parent = tracer.startSpan("smtp transaction", {
    kind: SpanKind.SERVER,
    startTime: firstStep,
    attributes: transactionAttributes(record),
  });
  if (!parent.isRecording()) {
    parent.end(record.endedAt);
    return;
  }
  const parentContext = trace.setSpan(context.active(), parent);
  for (const step of steps) {
    const start = sessionStart + step.atMs;
    const child = tracer.startSpan(
      `${step.set === "smtp" ? "" : `${step.set}.`}${step.hook} ${step.plugin}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: start,
        attributes: {
          "postern.hook.set": step.set,
          "postern.hook": step.hook,
          "postern.plugin": step.plugin,
          "postern.verdict": step.verdict,
          ...(step.reply ? { "smtp.reply": step.reply } : {}),
        },
      },
      parentContext,
    );
    if (failed.has(step.verdict)) child.setStatus({ code: SpanStatusCode.ERROR, message: step.error ?? step.verdict });
    child.end(start + step.durationMs);
  }
  if (record.outcome === "refused")
    parent.setStatus({ code: SpanStatusCode.ERROR, message: record.reply ?? "refused" });
  parent.end(record.endedAt);
}

export default function tracing(input: TracingOptions = {}): Plugin {
  const options = parseOptions(tracingOptionsSchema, input, pluginName);
  let unsubscribe: (() => void) | undefined;
  return {
    name: pluginName,
    setup(serverContext) {
      // Taken from the global provider at each transaction: an SDK registered after setup still counts.
      unsubscribe = recorderFor(serverContext).subscribe((record) =>
        spansOf(trace.getTracer(options.tracerName), record, options.silentHooks),
      );
    },
    close() {
      unsubscribe?.();
    },
  } satisfies Plugin;
}
