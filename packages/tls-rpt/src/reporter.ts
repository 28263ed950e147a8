// The daily run: for every policy domain with counts on a finished UTC day, look up where it
// wants reports, claim the report (one node sends it), build and gzip it, and hand it to each
// destination — mail through the server itself (core's submit, so outbound delivers it), HTTPS
// by POST. A report no destination took is given back and tried at the next run.
import { randomUUID } from "node:crypto";
import type { ServerContext } from "@postern/core";
import { type ReportDestination, reportDestinations } from "./destinations.ts";
import { postReport } from "./https-post.ts";
import type { ResolvedTlsRptOptions } from "./options.ts";
import { addDays, buildReport, gzipReport, reportFileName, type TlsReport, utcDay } from "./report.ts";
import { buildReportMail } from "./report-mail.ts";
import type { TlsRptStore } from "./store.ts";

/** What became of one destination of a report. */
export type DestinationOutcome = ReportDestination & { readonly ok: boolean; readonly detail: string };

/** What one run did with one policy domain's report. */
export interface SentReport {
  readonly day: string;
  readonly policyDomain: string;
  /** "sent": at least one destination took it; "no-destination": the domain publishes no rua. */
  readonly status: "sent" | "failed" | "no-destination" | "claimed-elsewhere" | "lookup-failed";
  readonly report?: TlsReport;
  readonly destinations: readonly DestinationOutcome[];
}

export interface ReporterSettings {
  readonly options: ResolvedTlsRptOptions;
  readonly store: TlsRptStore;
  readonly context: ServerContext;
  readonly organizationName: string;
  readonly contactInfo: string;
  readonly submitter: string;
  readonly from: string;
}

export class Reporter {
  readonly #settings: ReporterSettings;

  constructor(settings: ReporterSettings) {
    this.#settings = settings;
  }

  /** Sends the reports of every finished day not reported yet; `now` decides which day is today. */
  async run(now: number): Promise<SentReport[]> {
    const { store, options } = this.#settings;
    const today = utcDay(now);
    const sent: SentReport[] = [];
    for (const { day, policyDomain } of await store.pending(today)) {
      sent.push(await this.#report(day, policyDomain, now));
    }
    await store.prune(addDays(today, -options.retentionDays));
    return sent;
  }

  async #report(day: string, policyDomain: string, now: number): Promise<SentReport> {
    const { store, context } = this.#settings;
    const log = context.logger.child({ plugin: "@postern/tls-rpt", policyDomain, day });
    let destinations: ReportDestination[];
    try {
      destinations = await reportDestinations(context.resolver, policyDomain);
    } catch (error) {
      log.warn({ err: (error as Error).message }, "TLS-RPT record lookup failed; the report waits for the next run");
      return { day, policyDomain, status: "lookup-failed", destinations: [] };
    }
    const reportId = `${day}.${randomUUID()}@${this.#settings.submitter}`;
    if (!(await store.claim(day, policyDomain, destinations.length === 0 ? "none" : reportId))) {
      return { day, policyDomain, status: "claimed-elsewhere", destinations: [] };
    }
    if (destinations.length === 0) return { day, policyDomain, status: "no-destination", destinations: [] };
    const report = buildReport(day, await store.rows(day, policyDomain), this.#settings, reportId);
    const gzipped = gzipReport(report);
    const fileName = reportFileName(this.#settings.submitter, policyDomain, day, reportId.split("@")[0]!);
    const outcomes: DestinationOutcome[] = [];
    const mailto = destinations.filter((destination) => destination.kind === "mailto");
    if (mailto.length > 0) outcomes.push(...(await this.#mail(mailto, policyDomain, reportId, fileName, gzipped, now)));
    for (const destination of destinations) {
      if (destination.kind === "https") outcomes.push(await this.#post(destination, gzipped));
    }
    const ok = outcomes.some((outcome) => outcome.ok);
    if (!ok) await store.release(day, policyDomain);
    log[ok ? "info" : "warn"](
      { reportId, destinations: outcomes.map((outcome) => ({ ...outcome })) },
      ok ? "TLS report sent" : "TLS report not taken by any destination; tried again at the next run",
    );
    return { day, policyDomain, status: ok ? "sent" : "failed", report, destinations: outcomes };
  }

  async #mail(
    destinations: readonly Extract<ReportDestination, { kind: "mailto" }>[],
    policyDomain: string,
    reportId: string,
    fileName: string,
    gzipped: Buffer,
    now: number,
  ): Promise<DestinationOutcome[]> {
    const { context, from, submitter, organizationName } = this.#settings;
    const to = destinations.map((destination) => destination.address);
    const message = buildReportMail({
      from,
      to,
      submitter,
      policyDomain,
      reportId,
      organizationName,
      fileName,
      gzipped,
      date: new Date(now),
    });
    try {
      const outcome = await context.submit({ from, recipients: to, message });
      return destinations.map((destination) => {
        const refused = outcome.refused.find((entry) => entry.address === destination.address);
        return refused
          ? { ...destination, ok: false, detail: `refused: ${refused.reply.code} ${refused.reply.message}` }
          : { ...destination, ok: true, detail: `queued as ${outcome.queueId}` };
      });
    } catch (error) {
      return destinations.map((destination) => ({ ...destination, ok: false, detail: (error as Error).message }));
    }
  }

  async #post(
    destination: Extract<ReportDestination, { kind: "https" }>,
    gzipped: Buffer,
  ): Promise<DestinationOutcome> {
    const { options, context } = this.#settings;
    const resolve = async (hostname: string): Promise<string[]> => {
      const found = await Promise.allSettled([
        context.resolver.resolve(hostname, "A"),
        context.resolver.resolve(hostname, "AAAA"),
      ]);
      return found.flatMap((answer) => (answer.status === "fulfilled" ? (answer.value as string[]) : []));
    };
    try {
      const status = await postReport(destination.url, gzipped, {
        timeoutMs: options.https.timeout,
        ca: options.https.ca,
        resolve,
      });
      return { ...destination, ok: status >= 200 && status < 300, detail: `HTTP ${status}` };
    } catch (error) {
      return { ...destination, ok: false, detail: (error as Error).message };
    }
  }
}
