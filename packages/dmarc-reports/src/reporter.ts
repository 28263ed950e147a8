// The daily run: for every policy domain with counters on a finished UTC day, read its DMARC
// record as published now (rua and <policy_published>), verify the destinations, claim the
// report (one node sends it), build and gzip it, leave out destinations whose size limit it
// exceeds, and mail it through the server itself (core's submit, so outbound delivers it). A
// report no destination took is given back and tried at the next run. A dry run does all of
// that but the claim and the mail.
import { randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import type { DnsResolver, Logger, ServerContext } from "@postern/core";
import { addDays, buildReportMessage, utcDay } from "@postern/tls-rpt/reporting";
import { policyRecord, type ReportDestination, type SkippedDestination, verifiedDestinations } from "./destinations.ts";
import type { ResolvedDmarcReportsOptions } from "./options.ts";
import { publishedPolicy } from "./policy-record.ts";
import { type AggregateReport, buildAggregateReport, reportFileName } from "./report.ts";
import type { DmarcReportStore } from "./store.ts";
import { reportToXml } from "./xml.ts";

/** What became of one destination of a report. */
export interface DestinationOutcome {
  readonly uri: string;
  readonly address: string | undefined;
  readonly maxBytes: number | undefined;
  readonly external: boolean;
  readonly outcome: "sent" | "would-send" | "refused" | "failed" | "too-large" | SkippedDestination["reason"];
  readonly detail: string;
}

/** What one run did (or, dry, would do) with one policy domain's report. */
export interface ReportOutcome {
  readonly day: string;
  readonly policyDomain: string;
  /**
   * sent: at least one destination took it; dry-run: it would be sent; no-destination: the
   * domain publishes no usable rua (or none is left); lookup-failed: DNS failed, tried next run.
   */
  readonly status: "sent" | "dry-run" | "failed" | "no-destination" | "claimed-elsewhere" | "lookup-failed";
  readonly records: number;
  /** Messages the report counts. */
  readonly messages: number;
  readonly report?: AggregateReport;
  readonly fileName?: string;
  readonly xmlBytes?: number;
  readonly gzipBytes?: number;
  /** The size checked against rua size limits: the attachment as mailed (base64). */
  readonly encodedBytes?: number;
  readonly destinations: readonly DestinationOutcome[];
  readonly detail?: string;
}

export interface ReporterSettings {
  readonly options: ResolvedDmarcReportsOptions;
  readonly store: DmarcReportStore;
  readonly resolver: DnsResolver;
  readonly logger: Logger;
  /** Core's submit; absent in a dry run from the command line. */
  readonly submit: ServerContext["submit"] | undefined;
  readonly organizationName: string;
  readonly email: string;
  readonly submitter: string;
  readonly from: string;
}

/** Base64 in 76-column lines with CRLF, as the attachment goes out. */
const encodedLength = (bytes: number) => {
  const base64 = Math.ceil(bytes / 3) * 4;
  return base64 + Math.max(0, Math.ceil(base64 / 76) - 1) * 2;
};

const described = (destination: ReportDestination | SkippedDestination) =>
  "address" in destination
    ? {
        uri: destination.uri,
        address: destination.address,
        maxBytes: destination.maxBytes,
        external: destination.external,
      }
    : { uri: destination.uri, address: undefined, maxBytes: undefined, external: false };

export class Reporter {
  readonly #settings: ReporterSettings;

  constructor(settings: ReporterSettings) {
    this.#settings = settings;
  }

  /** Sends (or, `dryRun`, shows) the reports of every finished day not reported yet. */
  async run(now: number, options: { dryRun?: boolean } = {}): Promise<ReportOutcome[]> {
    const { store, options: settings } = this.#settings;
    const today = utcDay(now);
    const outcomes: ReportOutcome[] = [];
    for (const { day, policyDomain } of await store.pending(today)) {
      outcomes.push(await this.#report(day, policyDomain, now, options.dryRun ?? false));
    }
    if (!options.dryRun) await store.prune(addDays(today, -settings.retentionDays));
    return outcomes;
  }

  async #report(day: string, policyDomain: string, now: number, dryRun: boolean): Promise<ReportOutcome> {
    const { store, resolver, options } = this.#settings;
    const log = this.#settings.logger.child({ plugin: "@postern/dmarc-reports", policyDomain, day });
    const rows = await store.rows(day, policyDomain);
    const counts = { records: rows.length, messages: rows.reduce((sum, row) => sum + row.count, 0) };
    const base = { day, policyDomain, ...counts };
    let record: string | undefined;
    let found: Awaited<ReturnType<typeof verifiedDestinations>> = { destinations: [], skipped: [] };
    try {
      record = await policyRecord(resolver, policyDomain);
      if (record) found = await verifiedDestinations(resolver, policyDomain, record);
    } catch (error) {
      log.warn({ err: (error as Error).message }, "DMARC record lookup failed; the report waits for the next run");
      return { ...base, status: "lookup-failed", destinations: [], detail: (error as Error).message };
    }
    const skipped: DestinationOutcome[] = found.skipped.map((entry) => ({
      ...described(entry),
      outcome: entry.reason,
      detail: entry.detail,
    }));
    const policy = record ? publishedPolicy(policyDomain, record) : undefined;
    const reportId = `${day}.${randomUUID().replace(/-/g, "")}@${this.#settings.submitter}`;
    if (!policy || found.destinations.length === 0) {
      if (!dryRun) await store.claim(day, policyDomain, "none");
      const detail = record ? "no rua destination may receive it" : `no DMARC record at _dmarc.${policyDomain}`;
      return { ...base, status: "no-destination", destinations: skipped, detail };
    }
    if (!dryRun && !(await store.claim(day, policyDomain, reportId))) {
      return { ...base, status: "claimed-elsewhere", destinations: [] };
    }
    const report = buildAggregateReport(
      day,
      rows,
      policy,
      {
        orgName: this.#settings.organizationName,
        email: this.#settings.email,
        extraContactInfo: options.extraContactInfo,
        generator: "@postern/dmarc-reports",
      },
      reportId,
    );
    const xml = Buffer.from(reportToXml(report, { namespace: options.xmlNamespace }));
    const gzipped = gzipSync(xml);
    const fileName = reportFileName(this.#settings.submitter, report);
    const sizes = { xmlBytes: xml.length, gzipBytes: gzipped.length, encodedBytes: encodedLength(gzipped.length) };
    const fits = found.destinations.filter(
      (entry) => entry.maxBytes === undefined || entry.maxBytes >= sizes.encodedBytes,
    );
    const tooLarge: DestinationOutcome[] = found.destinations
      .filter((entry) => !fits.includes(entry))
      .map((entry) => ({
        ...described(entry),
        outcome: "too-large",
        detail: `the report is ${sizes.encodedBytes} bytes as mailed; the destination takes at most ${entry.maxBytes}`,
      }));
    for (const entry of tooLarge)
      log.warn(
        { destination: entry.uri, detail: entry.detail },
        "DMARC report too large for a destination; not sent there",
      );
    const sized = { ...base, report, fileName, ...sizes };
    if (dryRun) {
      const would = fits.map((entry) => ({ ...described(entry), outcome: "would-send" as const, detail: "" }));
      return { ...sized, status: "dry-run", destinations: [...would, ...tooLarge, ...skipped] };
    }
    const sent = fits.length > 0 ? await this.#mail(fits, report, fileName, gzipped, now) : [];
    const ok = sent.some((entry) => entry.outcome === "sent");
    if (!ok) await store.release(day, policyDomain);
    const destinations = [...sent, ...tooLarge, ...skipped];
    log[ok ? "info" : "warn"](
      { reportId, records: counts.records, destinations: destinations.map((entry) => ({ ...entry })) },
      ok
        ? "DMARC aggregate report sent"
        : "DMARC aggregate report not taken by any destination; tried again at the next run",
    );
    return { ...sized, status: ok ? "sent" : fits.length === 0 ? "no-destination" : "failed", destinations };
  }

  async #mail(
    destinations: readonly ReportDestination[],
    report: AggregateReport,
    fileName: string,
    gzipped: Buffer,
    now: number,
  ): Promise<DestinationOutcome[]> {
    const { submit, from, submitter, organizationName } = this.#settings;
    const to = destinations.map((destination) => destination.address);
    const { domain } = report.policy;
    const reportId = report.metadata.reportId;
    const message = buildReportMessage({
      from,
      to,
      date: new Date(now),
      subject: `Report Domain: ${domain} Submitter: ${submitter} Report-ID: <${reportId}>`,
      messageIdDomain: submitter,
      // No report-type is registered for DMARC aggregate reports and the format asks for no MIME
      // structure: the XML travels as an application/gzip part beside a line of text.
      multipartType: "multipart/mixed",
      text: `This is a DMARC aggregate report from ${organizationName} about mail using ${domain} in From, ${report.records.length} record(s).`,
      attachment: { contentType: "application/gzip", fileName, bytes: gzipped },
    });
    if (!submit) {
      return destinations.map((entry) => ({
        ...described(entry),
        outcome: "failed",
        detail: "no server to submit through",
      }));
    }
    try {
      const outcome = await submit({ from, recipients: to, message });
      return destinations.map((entry): DestinationOutcome => {
        const refused = outcome.refused.find((candidate) => candidate.address === entry.address);
        return refused
          ? { ...described(entry), outcome: "refused", detail: `${refused.reply.code} ${refused.reply.message}` }
          : { ...described(entry), outcome: "sent", detail: `queued as ${outcome.queueId}` };
      });
    } catch (error) {
      return destinations.map((entry) => ({
        ...described(entry),
        outcome: "failed",
        detail: (error as Error).message,
      }));
    }
  }
}
