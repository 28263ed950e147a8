// @postern/dmarc-reports — DMARC aggregate reports: counts every evaluation @postern/dmarc
// makes (its `dmarcEvaluated` events) per policy domain and UTC day, and once a day sends each
// domain that asks for them (rua in its DMARC record) its report — the DMARCbis aggregate XML,
// gzip'd — through the server's own outbound queue, to destinations that may receive it.
import { createLogger, type DnsResolver, type Logger, type Plugin, parseOptions } from "@postern/core";
import { dmarcEvaluated } from "@postern/dmarc";
import { CounterRecorder, createCounterStore, DailyRuns } from "@postern/tls-rpt/reporting";
import { DmarcReportsError } from "./errors.ts";
import { FileDmarcReportStore } from "./file-store.ts";
import { type DmarcReportsOptions, dmarcReportsOptionsSchema, type ResolvedDmarcReportsOptions } from "./options.ts";
import { PgDmarcReportStore } from "./pg-store.ts";
import { Reporter, type ReporterSettings, type ReportOutcome } from "./reporter.ts";
import { rowOf } from "./row.ts";
import { type DmarcReportStore, type DmarcResultRow, rowKey } from "./store.ts";

export type { ReportDestination, SkippedDestination } from "./destinations.ts";
export { policyRecord, verifiedDestinations } from "./destinations.ts";
export type { DmarcReportsErrorCode } from "./errors.ts";
export { DmarcReportsError } from "./errors.ts";
export { FileDmarcReportStore } from "./file-store.ts";
export type { DmarcReportsOptions } from "./options.ts";
export { dmarcReportsOptionsSchema } from "./options.ts";
export type { PgDmarcReportStoreOptions } from "./pg-store.ts";
export { PgDmarcReportStore } from "./pg-store.ts";
export type { PublishedPolicy, ReportUri } from "./policy-record.ts";
export { parseRua, publishedPolicy } from "./policy-record.ts";
export type { AggregateRecord, AggregateReport, ReportAuthor, ReportMetadata } from "./report.ts";
export { buildAggregateReport, gzipReport, reportFileName } from "./report.ts";
export type { DestinationOutcome, ReportOutcome } from "./reporter.ts";
export { rowOf } from "./row.ts";
export type { DkimAuthResult, DmarcReportStore, DmarcResultRow, OverrideType, SpfAuthResult } from "./store.ts";
export { rowKey } from "./store.ts";
export { dmarcNamespace, parseAggregateReport, reportToXml } from "./xml.ts";

/** What a dry run needs when the server is not running (the command line). */
export interface DryRunContext {
  readonly resolver: DnsResolver;
  readonly hostname: string;
  readonly logger?: Logger;
}

export interface DmarcReportsPlugin extends Plugin {
  readonly name: "@postern/dmarc-reports";
  /** Writes the evaluations counted in memory to the store now. */
  flush(): Promise<void>;
  /**
   * Sends the reports of every finished UTC day not reported yet (what the daily schedule runs).
   * `now` (epoch ms, default Date.now()) decides which day is today.
   */
  sendReports(options?: { now?: number }): Promise<ReportOutcome[]>;
  /**
   * What sendReports() would send — domains, destinations, records, sizes — without claiming or
   * sending anything. Before setup (no server running) pass `context`: the store is opened for it.
   */
  dryRun(options?: { now?: number; context?: DryRunContext }): Promise<ReportOutcome[]>;
}

function createStore(options: ResolvedDmarcReportsOptions): DmarcReportStore {
  return createCounterStore<DmarcReportStore>(options.store, {
    defaultDir: "./data/dmarc-reports",
    file: (dir) => new FileDmarcReportStore({ dir }),
    postgres: (pgOptions) => new PgDmarcReportStore(pgOptions),
    missingUrl: () =>
      new DmarcReportsError(
        "POSTERN_DMARC_REPORTS_STORE_FAILED",
        "@postern/dmarc-reports: store.connectionString: expected a PostgreSQL URL such as postgres://user@host/db (or set DATABASE_URL)",
      ),
  });
}

async function openStore(store: DmarcReportStore): Promise<void> {
  try {
    await store.open();
  } catch (error) {
    throw new DmarcReportsError(
      "POSTERN_DMARC_REPORTS_STORE_FAILED",
      `the DMARC report store did not open: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

export default function dmarcReports(input: DmarcReportsOptions = {}): DmarcReportsPlugin {
  const options = parseOptions(dmarcReportsOptionsSchema, input, "@postern/dmarc-reports");
  const store = createStore(options);
  let recorder: CounterRecorder<DmarcResultRow> | undefined;
  let reporter: Reporter | undefined;
  let runs: DailyRuns<ReportOutcome> | undefined;
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
    email: options.email ?? `postmaster@${context.hostname}`,
    submitter: options.submitter ?? context.hostname,
    from: options.from ?? `noreply-dmarc@${context.hostname}`,
  });

  const plugin: DmarcReportsPlugin = {
    name: "@postern/dmarc-reports",
    hooks: {},

    async flush() {
      await recorder?.flush();
    },

    async sendReports({ now = Date.now() } = {}) {
      if (!runs) throw new Error("@postern/dmarc-reports: sendReports() before the server's setup");
      return runs.run(now);
    },

    async dryRun({ now = Date.now(), context } = {}) {
      if (reporter && recorder) {
        await recorder.flush();
        return reporter.run(now, { dryRun: true });
      }
      if (!context)
        throw new Error("@postern/dmarc-reports: dryRun() before setup needs a context (resolver, hostname)");
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
      const log = context.logger.child({ plugin: "@postern/dmarc-reports" });
      const counting = new CounterRecorder<DmarcResultRow>({ store, key: rowKey, log, what: "DMARC report counts" });
      recorder = counting;
      const daily = new Reporter(settings(context, (submission) => context.submit(submission)));
      reporter = daily;
      unsubscribe = context.events.on(dmarcEvaluated, (event) => {
        const row = rowOf(event);
        if (row) counting.count(row);
      });
      // From sendHourUtc on, yesterday's reports go out (and any a failed run left).
      runs = new DailyRuns({ flush: () => counting.flush(), run: (now) => daily.run(now), log, what: "DMARC report" });
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
