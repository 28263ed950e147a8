// @postern/tls-rpt — SMTP TLS Reporting (RFC 8460): counts the TLS outcome of every outbound
// connection (outbound's `outboundTls` events) per policy domain and day, and once a day sends
// each domain that asks for them (_smtp._tls TXT) its report, by mail and by HTTPS.
import { createLogger, type DnsResolver, type Logger, type Plugin, parseOptions } from "@postern/core";
import { outboundTls } from "@postern/outbound";
import { TlsRptError } from "./errors.ts";
import { FileTlsRptStore } from "./file-store.ts";
import { type ResolvedTlsRptOptions, type TlsRptOptions, tlsRptOptionsSchema } from "./options.ts";
import { PgTlsRptStore } from "./pg-store.ts";
import { OutcomeRecorder } from "./recorder.ts";
import { Reporter, type ReporterSettings, type SentReport } from "./reporter.ts";
import { DailyRuns } from "./reporting/daily-runs.ts";
import { createCounterStore } from "./reporting/store-option.ts";
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

/** What a dry run needs when the server is not running (the command line). */
export interface DryRunContext {
  readonly resolver: DnsResolver;
  readonly hostname: string;
  readonly logger?: Logger;
}

export interface TlsRptPlugin extends Plugin {
  readonly name: "@postern/tls-rpt";
  /** Writes the outcomes counted in memory to the store now. */
  flush(): Promise<void>;
  /**
   * Sends the reports of every finished UTC day not reported yet (what the daily schedule runs).
   * `now` (epoch ms, default Date.now()) decides which day is today.
   */
  sendReports(options?: { now?: number }): Promise<SentReport[]>;
  /**
   * What sendReports() would send — policy domains, destinations with their size verdicts,
   * session counts, sizes — without claiming, sending or pruning anything. Before setup (no
   * server running) pass `context`: the store is opened for it.
   */
  dryRun(options?: { now?: number; context?: DryRunContext }): Promise<SentReport[]>;
}

async function openStore(store: TlsRptStore): Promise<void> {
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
}

function createStore(options: ResolvedTlsRptOptions): TlsRptStore {
  return createCounterStore<TlsRptStore>(options.store, {
    defaultDir: "./data/tls-rpt",
    file: (dir) => new FileTlsRptStore({ dir }),
    postgres: (pgOptions) => new PgTlsRptStore(pgOptions),
    missingUrl: () =>
      new TlsRptError(
        "POSTERN_TLSRPT_STORE_FAILED",
        "@postern/tls-rpt: store.connectionString: expected a PostgreSQL URL such as postgres://user@host/db (or set DATABASE_URL)",
      ),
  });
}

export default function tlsRpt(input: TlsRptOptions = {}): TlsRptPlugin {
  const options = parseOptions(tlsRptOptionsSchema, input, "@postern/tls-rpt");
  const store = createStore(options);
  let recorder: OutcomeRecorder | undefined;
  let reporter: Reporter | undefined;
  let runs: DailyRuns<SentReport> | undefined;
  let unsubscribe: (() => void) | undefined;

  const settings = (
    context: { resolver: DnsResolver; hostname: string; logger: Logger },
    submit: ReporterSettings["submit"],
  ): ReporterSettings => ({
    options,
    store,
    resolver: context.resolver,
    logger: context.logger,
    submit,
    organizationName: options.organizationName ?? context.hostname,
    contactInfo: options.contactInfo ?? `postmaster@${context.hostname}`,
    submitter: options.submitter ?? context.hostname,
    from: options.from ?? `noreply-tlsrpt@${context.hostname}`,
  });

  const plugin: TlsRptPlugin = {
    name: "@postern/tls-rpt",

    async flush() {
      await recorder?.flush();
    },

    async sendReports({ now = Date.now() } = {}) {
      if (!runs) throw new Error("@postern/tls-rpt: sendReports() before the server's setup");
      return runs.run(now);
    },

    async dryRun({ now = Date.now(), context } = {}) {
      if (reporter && recorder) {
        await recorder.flush();
        return reporter.run(now, { dryRun: true });
      }
      if (!context) throw new Error("@postern/tls-rpt: dryRun() before setup needs a context (resolver, hostname)");
      await openStore(store);
      try {
        const logger = context.logger ?? createLogger({ level: "silent" });
        return await new Reporter(settings({ ...context, logger }, undefined)).run(now, { dryRun: true });
      } finally {
        await store.close();
      }
    },

    async setup(context) {
      await openStore(store);
      const log = context.logger.child({ plugin: "@postern/tls-rpt" });
      const counting = new OutcomeRecorder({ store, log, includeNoPolicy: options.includeNoPolicy });
      recorder = counting;
      const daily = new Reporter(settings(context, (submission) => context.submit(submission)));
      reporter = daily;
      unsubscribe = context.events.on(outboundTls, (outcome) => counting.record(outcome));
      // From sendHourUtc on, yesterday's reports go out (and any a failed run left).
      runs = new DailyRuns({ flush: () => counting.flush(), run: (now) => daily.run(now), log, what: "TLS-RPT" });
      runs.start(options);
    },

    async close() {
      unsubscribe?.();
      await runs?.stop();
      await store.close();
    },
  };
  return plugin satisfies Plugin;
}
