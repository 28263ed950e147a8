// The report itself (RFC 8460 §4): one JSON document per policy domain and UTC day, each policy
// in force with its session counts and the failures grouped by result type and hosts; its file
// name (§5.1) and its gzip'd bytes (application/tlsrpt+gzip, §5.3).
import { gzipSync } from "node:zlib";
import type { TlsPolicyType } from "@postern/outbound";
import { dayRange } from "./reporting/days.ts";
import type { TlsResultRow } from "./store.ts";

export { addDays, utcDay } from "./reporting/days.ts";

export interface TlsReportPolicy {
  readonly policy: {
    readonly "policy-type": TlsPolicyType;
    readonly "policy-string"?: readonly string[];
    readonly "policy-domain": string;
    readonly "mx-host"?: string;
  };
  readonly summary: {
    readonly "total-successful-session-count": number;
    readonly "total-failure-session-count": number;
  };
  readonly "failure-details"?: readonly TlsFailureDetail[];
}

export interface TlsFailureDetail {
  readonly "result-type": string;
  readonly "sending-mta-ip"?: string;
  readonly "receiving-mx-hostname"?: string;
  readonly "receiving-ip"?: string;
  readonly "failed-session-count": number;
  readonly "failure-reason-code"?: string;
}

/** An RFC 8460 aggregate report, as sent. */
export interface TlsReport {
  readonly "organization-name": string;
  readonly "date-range": { readonly "start-datetime": string; readonly "end-datetime": string };
  readonly "contact-info": string;
  readonly "report-id": string;
  readonly policies: readonly TlsReportPolicy[];
}

export interface ReportAuthor {
  readonly organizationName: string;
  readonly contactInfo: string;
}

/** The report of one policy domain for one day, from that day's counters. */
export function buildReport(
  day: string,
  rows: readonly TlsResultRow[],
  author: ReportAuthor,
  reportId: string,
): TlsReport {
  const byPolicy = new Map<string, TlsResultRow[]>();
  for (const row of rows) {
    const key = JSON.stringify([row.policyType, row.policyDomain, row.policyStrings, row.policyMxHost]);
    byPolicy.set(key, [...(byPolicy.get(key) ?? []), row]);
  }
  const policies = [...byPolicy.values()].map((group): TlsReportPolicy => {
    const first = group[0]!;
    let successes = 0;
    let failures = 0;
    const details = new Map<string, TlsFailureDetail>();
    for (const row of group) {
      if (row.result === "success") {
        successes += row.count;
        continue;
      }
      failures += row.count;
      const key = JSON.stringify([row.result, row.sendingIp, row.receivingMx, row.receivingIp, row.reasonCode]);
      const known = details.get(key);
      details.set(key, {
        "result-type": row.result,
        ...(row.sendingIp ? { "sending-mta-ip": row.sendingIp } : {}),
        ...(row.receivingMx ? { "receiving-mx-hostname": row.receivingMx } : {}),
        ...(row.receivingIp ? { "receiving-ip": row.receivingIp } : {}),
        "failed-session-count": (known?.["failed-session-count"] ?? 0) + row.count,
        ...(row.reasonCode ? { "failure-reason-code": row.reasonCode } : {}),
      });
    }
    return {
      policy: {
        "policy-type": first.policyType,
        ...(first.policyStrings.length > 0 ? { "policy-string": first.policyStrings } : {}),
        "policy-domain": first.policyDomain,
        ...(first.policyMxHost ? { "mx-host": first.policyMxHost } : {}),
      },
      summary: { "total-successful-session-count": successes, "total-failure-session-count": failures },
      ...(details.size > 0 ? { "failure-details": [...details.values()] } : {}),
    };
  });
  return {
    "organization-name": author.organizationName,
    "date-range": { "start-datetime": `${day}T00:00:00Z`, "end-datetime": `${day}T23:59:59Z` },
    "contact-info": author.contactInfo,
    "report-id": reportId,
    policies,
  };
}

/** RFC 8460 §5.1: submitter!policy-domain!begin!end!unique-id.json.gz (begin and end in epoch seconds). */
export function reportFileName(submitter: string, policyDomain: string, day: string, uniqueId: string): string {
  const { begin, end } = dayRange(day);
  const unique = uniqueId.replace(/[^A-Za-z0-9._-]/g, "");
  return `${submitter}!${policyDomain}!${begin}!${end}!${unique}.json.gz`;
}

export function gzipReport(report: TlsReport): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(report)));
}
