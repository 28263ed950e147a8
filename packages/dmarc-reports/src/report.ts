// The report itself: one per policy domain and UTC day, the day's counters as records under the
// policy published, its file name (receiver!policy-domain!begin!end!unique-id.xml.gz) and its
// gzip'd XML.
import { gzipSync } from "node:zlib";
import { dayRange } from "@postern/tls-rpt/reporting";
import type { PublishedPolicy } from "./policy-record.ts";
import type { DkimAuthResult, DmarcResultRow, OverrideType, SpfAuthResult } from "./store.ts";
import { reportToXml } from "./xml.ts";

export interface ReportMetadata {
  readonly orgName: string;
  /** The contact address of the reporting organisation. */
  readonly email: string;
  readonly extraContactInfo: string | undefined;
  readonly reportId: string;
  /** The reporting period, epoch seconds. */
  readonly begin: number;
  readonly end: number;
  readonly errors: readonly string[];
  readonly generator: string | undefined;
}

/** One <record>: the messages of one source IP with the same disposition, identifiers and results. */
export interface AggregateRecord {
  readonly sourceIp: string;
  readonly count: number;
  readonly disposition: "none" | "quarantine" | "reject";
  readonly dkim: "pass" | "fail";
  readonly spf: "pass" | "fail";
  readonly reasons: readonly { readonly type: OverrideType | string; readonly comment: string }[];
  readonly headerFrom: string;
  /** undefined when the report omits it; "" for the null sender. */
  readonly envelopeFrom: string | undefined;
  readonly envelopeTo: string | undefined;
  readonly dkimResults: readonly DkimAuthResult[];
  readonly spfResult: SpfAuthResult | undefined;
}

/** An aggregate report (the DMARCbis aggregate reporting format, successor of RFC 7489 appendix C). */
export interface AggregateReport {
  readonly version: string;
  readonly metadata: ReportMetadata;
  readonly policy: PublishedPolicy & { readonly discoveryMethod: "psl" | "treewalk" | undefined };
  readonly records: readonly AggregateRecord[];
}

export interface ReportAuthor {
  readonly orgName: string;
  readonly email: string;
  readonly extraContactInfo: string | undefined;
  readonly generator: string | undefined;
}

/** The report of one policy domain for one day, from that day's counters. */
export function buildAggregateReport(
  day: string,
  rows: readonly DmarcResultRow[],
  policy: PublishedPolicy,
  author: ReportAuthor,
  reportId: string,
): AggregateReport {
  const { begin, end } = dayRange(day);
  const records = [...rows]
    .sort(
      (a, b) =>
        b.count - a.count ||
        a.sourceIp.localeCompare(b.sourceIp) ||
        a.headerFrom.localeCompare(b.headerFrom) ||
        a.disposition.localeCompare(b.disposition),
    )
    .map(
      (row): AggregateRecord => ({
        sourceIp: row.sourceIp,
        count: row.count,
        disposition: row.disposition,
        dkim: row.dkim,
        spf: row.spf,
        reasons: row.reasons,
        headerFrom: row.headerFrom,
        envelopeFrom: row.envelopeFrom,
        envelopeTo: undefined,
        dkimResults: row.dkimResults,
        spfResult: row.spfResult ?? undefined,
      }),
    );
  return {
    version: "1.0",
    metadata: { ...author, reportId, begin, end, errors: [] },
    // @postern/dmarc evaluates with mailauth's DNS Tree Walk (RFC 9989), not a public suffix list.
    policy: { ...policy, discoveryMethod: "treewalk" },
    records,
  };
}

/** receiver!policy-domain!begin!end!unique-id.xml.gz (begin and end in epoch seconds). */
export function reportFileName(receiver: string, report: AggregateReport): string {
  const unique = report.metadata.reportId.replace(/@.*$/, "").replace(/[^A-Za-z0-9]/g, "");
  const { begin, end } = report.metadata;
  return `${receiver}!${report.policy.domain}!${begin}!${end}!${unique}.xml.gz`;
}

export function gzipReport(report: AggregateReport, options: { namespace: boolean }): Buffer {
  return gzipSync(Buffer.from(reportToXml(report, options)));
}
