// The daily run: for every policy domain with counts on a finished UTC day, look up where it
// wants reports, claim the report (one node sends it), build and gzip it, leave out destinations
// whose size limit it exceeds, and hand it to each other destination — mail through the server
// itself (core's submit, so outbound delivers it), HTTPS by POST. A report no destination took
// is given back and tried at the next run. A dry run does all of that but the claim, the sending
// and the pruning.
import { randomUUID } from "node:crypto";
import type { DnsResolver, Logger, ServerContext } from "@postern/core";
import { type ReportDestination, reportDestinations } from "./destinations.ts";
import { postReport } from "./https-post.ts";
import type { ResolvedTlsRptOptions } from "./options.ts";
import { buildReport, gzipReport, reportFileName, type TlsReport } from "./report.ts";
import { buildReportMail } from "./report-mail.ts";
import { addDays, utcDay } from "./reporting/days.ts";
import { base64Size } from "./reporting/size-limit.ts";
import type { TlsResultRow, TlsRptStore } from "./store.ts";

/** What became of one destination of a report. */
export type DestinationOutcome = ReportDestination & {
  /** The destination took the report (never, in a dry run). */
  readonly ok: boolean;
  /** would-send: a dry run would send it there; too-large: over the destination's size limit. */
  readonly outcome: "sent" | "would-send" | "too-large" | "refused" | "failed";
  readonly detail: string;
};

/** What one run did (or, dry, would do) with one policy domain's report. */
export interface SentReport {
  readonly day: string;
  readonly policyDomain: string;
  /**
   * sent: at least one destination took it; dry-run: it would be sent; no-destination: the
   * domain publishes no rua; too-large: every destination's size limit is below it (marked done,
   * it would not shrink); lookup-failed: DNS failed, tried next run.
   */
  readonly status:
    | "sent"
    | "failed"
    | "dry-run"
    | "no-destination"
    | "too-large"
    | "claimed-elsewhere"
    | "lookup-failed";
  /** Sessions the day's counters hold for the domain, as the report sums them. */
  readonly successfulSessions: number;
  readonly failedSessions: number;
  readonly report?: TlsReport;
  readonly fileName?: string;
  readonly jsonBytes?: number;
  readonly gzipBytes?: number;
  /** The attachment as mailed (base64): what a mailto: limit is checked against; https: the gzip size. */
  readonly mailBytes?: number;
  readonly destinations: readonly DestinationOutcome[];
  readonly detail?: string;
}

export interface ReporterSettings {
  readonly options: ResolvedTlsRptOptions;
  readonly store: TlsRptStore;
  readonly resolver: DnsResolver;
  readonly logger: Logger;
  /** Core's submit; absent in a dry run from the command line. */
  readonly submit: ServerContext["submit"] | undefined;
  readonly organizationName: string;
  readonly contactInfo: string;
  readonly submitter: string;
  readonly from: string;
}

function sessions(rows: readonly TlsResultRow[]): { successfulSessions: number; failedSessions: number } {
  let successfulSessions = 0;
  let failedSessions = 0;
  for (const row of rows) {
    if (row.result === "success") successfulSessions += row.count;
    else failedSessions += row.count;
  }
  return { successfulSessions, failedSessions };
}

export class Reporter {
  readonly #settings: ReporterSettings;

  constructor(settings: ReporterSettings) {
    this.#settings = settings;
  }

  /** Sends (or, `dryRun`, shows) the reports of every finished day not reported yet; `now` decides which day is today. */
  async run(now: number, options: { dryRun?: boolean } = {}): Promise<SentReport[]> {
    const { store, options: settings } = this.#settings;
    const dryRun = options.dryRun ?? false;
    const today = utcDay(now);
    const sent: SentReport[] = [];
    for (const { day, policyDomain } of await store.pending(today)) {
      sent.push(await this.#report(day, policyDomain, now, dryRun));
    }
    if (!dryRun) await store.prune(addDays(today, -settings.retentionDays));
    return sent;
  }

  async #report(day: string, policyDomain: string, now: number, dryRun: boolean): Promise<SentReport> {
    const { store, resolver } = this.#settings;
    const log = this.#settings.logger.child({ plugin: "@postern/tls-rpt", policyDomain, day });
    const rows = await store.rows(day, policyDomain);
    const base = { day, policyDomain, ...sessions(rows) };
    let destinations: ReportDestination[];
    try {
      destinations = await reportDestinations(resolver, policyDomain);
    } catch (error) {
      log.warn({ err: (error as Error).message }, "TLS-RPT record lookup failed; the report waits for the next run");
      return { ...base, status: "lookup-failed", destinations: [], detail: (error as Error).message };
    }
    const reportId = `${day}.${randomUUID()}@${this.#settings.submitter}`;
    if (!dryRun && !(await store.claim(day, policyDomain, destinations.length === 0 ? "none" : reportId))) {
      return { ...base, status: "claimed-elsewhere", destinations: [] };
    }
    if (destinations.length === 0) {
      return {
        ...base,
        status: "no-destination",
        destinations: [],
        detail: `no TLSRPTv1 record with a rua at _smtp._tls.${policyDomain}`,
      };
    }
    const report = buildReport(day, rows, this.#settings, reportId);
    const gzipped = gzipReport(report);
    const fileName = reportFileName(this.#settings.submitter, policyDomain, day, reportId.split("@")[0]!);
    const sizes = {
      jsonBytes: Buffer.byteLength(JSON.stringify(report)),
      gzipBytes: gzipped.length,
      mailBytes: base64Size(gzipped.length),
    };
    // A limit is checked against the report as it travels: the base64 attachment, or the POST body.
    const travels = (destination: ReportDestination) =>
      destination.kind === "mailto" ? sizes.mailBytes : sizes.gzipBytes;
    const fits = destinations.filter(
      (destination) => destination.maxBytes === undefined || destination.maxBytes >= travels(destination),
    );
    const tooLarge: DestinationOutcome[] = destinations
      .filter((destination) => !fits.includes(destination))
      .map((destination) => ({
        ...destination,
        ok: false,
        outcome: "too-large",
        detail: `the report is ${travels(destination)} bytes ${destination.kind === "mailto" ? "as mailed" : "gzip'd"}; the destination takes at most ${destination.maxBytes}`,
      }));
    for (const entry of tooLarge) {
      log.warn(
        { destination: entry.kind === "mailto" ? entry.address : entry.url, detail: entry.detail },
        "TLS report too large for a destination; not sent there",
      );
    }
    const sized = { ...base, report, fileName, ...sizes };
    if (dryRun) {
      const would = fits.map(
        (destination): DestinationOutcome => ({
          ...destination,
          ok: false,
          outcome: "would-send",
          detail: "",
        }),
      );
      return { ...sized, status: fits.length > 0 ? "dry-run" : "too-large", destinations: [...would, ...tooLarge] };
    }
    // Too large for every destination: it stays claimed, as the day's counts will not shrink.
    if (fits.length === 0) return { ...sized, status: "too-large", destinations: tooLarge };
    const outcomes: DestinationOutcome[] = [];
    const mailto = fits.filter((destination) => destination.kind === "mailto");
    if (mailto.length > 0) outcomes.push(...(await this.#mail(mailto, policyDomain, reportId, fileName, gzipped, now)));
    for (const destination of fits) {
      if (destination.kind === "https") outcomes.push(await this.#post(destination, gzipped));
    }
    const ok = outcomes.some((outcome) => outcome.ok);
    if (!ok) await store.release(day, policyDomain);
    const all = [...outcomes, ...tooLarge];
    log[ok ? "info" : "warn"](
      { reportId, destinations: all.map((outcome) => ({ ...outcome })) },
      ok ? "TLS report sent" : "TLS report not taken by any destination; tried again at the next run",
    );
    return { ...sized, status: ok ? "sent" : "failed", destinations: all };
  }

  async #mail(
    destinations: readonly Extract<ReportDestination, { kind: "mailto" }>[],
    policyDomain: string,
    reportId: string,
    fileName: string,
    gzipped: Buffer,
    now: number,
  ): Promise<DestinationOutcome[]> {
    const { submit, from, submitter, organizationName } = this.#settings;
    const failed = (detail: string) =>
      destinations.map((destination): DestinationOutcome => ({ ...destination, ok: false, outcome: "failed", detail }));
    if (!submit) return failed("no server to submit the report through");
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
      const outcome = await submit({ from, recipients: to, message });
      return destinations.map((destination): DestinationOutcome => {
        const refused = outcome.refused.find((entry) => entry.address === destination.address);
        return refused
          ? {
              ...destination,
              ok: false,
              outcome: "refused",
              detail: `refused: ${refused.reply.code} ${refused.reply.message}`,
            }
          : { ...destination, ok: true, outcome: "sent", detail: `queued as ${outcome.queueId}` };
      });
    } catch (error) {
      return failed((error as Error).message);
    }
  }

  async #post(
    destination: Extract<ReportDestination, { kind: "https" }>,
    gzipped: Buffer,
  ): Promise<DestinationOutcome> {
    const { options, resolver } = this.#settings;
    const resolve = async (hostname: string): Promise<string[]> => {
      const found = await Promise.allSettled([resolver.resolve(hostname, "A"), resolver.resolve(hostname, "AAAA")]);
      return found.flatMap((answer) => (answer.status === "fulfilled" ? (answer.value as string[]) : []));
    };
    try {
      const status = await postReport(destination.url, gzipped, {
        timeoutMs: options.https.timeout,
        ca: options.https.ca,
        resolve,
      });
      const ok = status >= 200 && status < 300;
      return { ...destination, ok, outcome: ok ? "sent" : "refused", detail: `HTTP ${status}` };
    } catch (error) {
      return { ...destination, ok: false, outcome: "failed", detail: (error as Error).message };
    }
  }
}
