// @postern/tls-rpt — SMTP TLS Reporting (RFC 8460): counts the TLS outcome of every outbound
// connection (outbound's `outboundTls` events) per policy domain and day, and once a day sends
// each domain that asks for them (_smtp._tls TXT) its report, by mail and by HTTPS.
import { type Plugin, parseOptions } from "@postern/core";
import { outboundTls } from "@postern/outbound";
import { TlsRptError } from "./errors.ts";
import { FileTlsRptStore } from "./file-store.ts";
import { type ResolvedTlsRptOptions, type TlsRptOptions, tlsRptOptionsSchema } from "./options.ts";
import { PgTlsRptStore } from "./pg-store.ts";
import { OutcomeRecorder } from "./recorder.ts";
import { Reporter, type SentReport } from "./reporter.ts";
import type { TlsRptStore } from "./store.ts";

export type { ReportDestination } from "./destinations.ts";
export { parseTlsRptRecord, reportDestinations } from "./destinations.ts";
export type { TlsRptErrorCode } from "./errors.ts";
export { TlsRptError } from "./errors.ts";
export { FileTlsRptStore } from "./file-store.ts";
export type { TlsRptOptions } from "./options.ts";
export { tlsRptOptionsSchema } from "./options.ts";
export type { PgTlsRptStoreOptions } from "./pg-store.ts";
export { PgTlsRptStore } from "./pg-store.ts";
export { rowOf } from "./recorder.ts";
export type { ReportAuthor, TlsFailureDetail, TlsReport, TlsReportPolicy } from "./report.ts";
export { buildReport, gzipReport, reportFileName, utcDay } from "./report.ts";
export type { DestinationOutcome, SentReport } from "./reporter.ts";
export type { PendingReport, TlsResultRow, TlsRptStore } from "./store.ts";
export { rowKey } from "./store.ts";

export interface TlsRptPlugin extends Plugin {
  readonly name: "@postern/tls-rpt";
  /** Writes the outcomes counted in memory to the store now. */
  flush(): Promise<void>;
  /**
   * Sends the reports of every finished UTC day not reported yet (what the daily schedule runs).
   * `now` (epoch ms, default Date.now()) decides which day is today.
   */
  sendReports(options?: { now?: number }): Promise<SentReport[]>;
}

const hourMs = 3_600_000;

function createStore(options: ResolvedTlsRptOptions): TlsRptStore {
  const store = options.store ?? { type: "file" as const, dir: "./data/tls-rpt" };
  switch (store.type) {
    case "postgres": {
      const connectionString =
        ("connectionString" in store ? store.connectionString : undefined) ?? process.env.DATABASE_URL;
      if (!connectionString) {
        throw new TlsRptError(
          "POSTERN_TLSRPT_STORE_FAILED",
          "@postern/tls-rpt: store.connectionString: expected a PostgreSQL URL such as postgres://user@host/db (or set DATABASE_URL)",
        );
      }
      return new PgTlsRptStore({
        connectionString,
        schema: "schema" in store ? store.schema : undefined,
        maxConnections: "maxConnections" in store ? store.maxConnections : undefined,
      });
    }
    case "file":
      return new FileTlsRptStore({ dir: store.dir });
    case "custom":
      return store.store;
  }
}

export default function tlsRpt(input: TlsRptOptions = {}): TlsRptPlugin {
  const options = parseOptions(tlsRptOptionsSchema, input, "@postern/tls-rpt");
  const store = createStore(options);
  let recorder: OutcomeRecorder | undefined;
  let reporter: Reporter | undefined;
  let unsubscribe: (() => void) | undefined;
  const timers: NodeJS.Timeout[] = [];
  let running: Promise<SentReport[]> | undefined;

  const plugin: TlsRptPlugin = {
    name: "@postern/tls-rpt",

    async flush() {
      await recorder?.flush();
    },

    async sendReports({ now = Date.now() } = {}) {
      if (!reporter || !recorder) throw new Error("@postern/tls-rpt: sendReports() before the server's setup");
      // One run at a time: a slow destination must not let the schedule start a second.
      if (running) return running;
      const current = reporter;
      running = recorder
        .flush()
        .then(() => current.run(now))
        .finally(() => {
          running = undefined;
        });
      return running;
    },

    async setup(context) {
      try {
        await store.open();
      } catch (error) {
        throw new TlsRptError(
          "POSTERN_TLSRPT_STORE_FAILED",
          `the TLS-RPT store did not open: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
      const log = context.logger.child({ plugin: "@postern/tls-rpt" });
      const counting = new OutcomeRecorder({ store, log, includeNoPolicy: options.includeNoPolicy });
      recorder = counting;
      reporter = new Reporter({
        options,
        store,
        context,
        organizationName: options.organizationName ?? context.hostname,
        contactInfo: options.contactInfo ?? `postmaster@${context.hostname}`,
        submitter: options.submitter ?? context.hostname,
        from: options.from ?? `noreply-tlsrpt@${context.hostname}`,
      });
      unsubscribe = context.events.on(outboundTls, (outcome) => counting.record(outcome));
      const flushing = setInterval(() => counting.flush().catch(() => undefined), options.flushInterval);
      flushing.unref();
      timers.push(flushing);
      if (options.schedule) {
        // Checked hourly: from sendHourUtc on, yesterday's reports go out (and any a failed run left).
        const check = () => {
          if (new Date().getUTCHours() < options.sendHourUtc) return;
          plugin.sendReports().catch((error: Error) => log.error({ err: error.message }, "TLS-RPT run failed"));
        };
        const hourly = setInterval(check, hourMs);
        hourly.unref();
        timers.push(hourly);
      }
    },

    async close() {
      unsubscribe?.();
      for (const timer of timers.splice(0)) clearInterval(timer);
      await running?.catch(() => undefined);
      await recorder?.flush().catch(() => undefined);
      await store.close();
    },
  };
  return plugin satisfies Plugin;
}
