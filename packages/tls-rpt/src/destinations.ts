// Where a policy domain wants its reports (RFC 8460 §3): the TXT record at _smtp._tls.<domain>,
// "v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://reports.example.com/v1". Exactly one
// record starting with v=TLSRPTv1 must be there, or the domain takes no reports.
//
// A URI may end in DMARC's size limit ("mailto:tlsrpt@example.com!10m"; RFC 8460 takes its rua
// list from DMARC and, like it, has "!" %-encoded inside URIs): the limit is kept, and a report
// larger than it does not go to that destination.
import type { DnsResolver } from "@postern/core";
import { splitSizeLimit } from "./reporting/size-limit.ts";

/** The largest report a destination takes, in bytes, when its URI gives one. */
interface SizeLimited {
  readonly maxBytes?: number | undefined;
}

export type ReportDestination =
  | ({ readonly kind: "mailto"; readonly address: string } & SizeLimited)
  | ({ readonly kind: "https"; readonly url: string } & SizeLimited);

const version = /^v=TLSRPTv1[ \t]*;/;

/** The destinations of one record, or undefined when it is not a TLSRPTv1 record with a rua. */
export function parseTlsRptRecord(record: string): ReportDestination[] | undefined {
  if (!version.test(record)) return undefined;
  const fields = record.split(";").slice(1);
  const rua = fields
    .map((field) => field.trim())
    .find((field) => /^rua[ \t]*=/i.test(field))
    ?.replace(/^rua[ \t]*=/i, "");
  if (rua === undefined) return undefined;
  const destinations: ReportDestination[] = [];
  for (const entry of rua.split(",").map((part) => part.trim())) {
    const { uri, maxBytes } = splitSizeLimit(entry);
    const limit = maxBytes !== undefined ? { maxBytes } : {};
    if (/^mailto:/i.test(uri)) {
      // RFC 6068: a mailto URI may carry %-escapes and ?headers; only the address counts here.
      let address: string;
      try {
        address = decodeURIComponent(uri.slice("mailto:".length).split("?")[0]!);
      } catch {
        continue;
      }
      if (/^[^@\s]+@[^@\s]+$/.test(address)) destinations.push({ kind: "mailto", address, ...limit });
    } else if (/^https:\/\//i.test(uri)) {
      try {
        destinations.push({ kind: "https", url: new URL(uri).toString(), ...limit });
      } catch {
        // not a URL: skipped, like any URI scheme we do not send to
      }
    }
  }
  return destinations;
}

const absent = new Set(["ENOTFOUND", "ENODATA"]);

/**
 * The report destinations of a policy domain; empty when it publishes none (or more than one
 * TLSRPTv1 record). A failed lookup throws, so the report waits for a later run.
 */
export async function reportDestinations(resolver: DnsResolver, policyDomain: string): Promise<ReportDestination[]> {
  let answers: unknown;
  try {
    answers = await resolver.resolve(`_smtp._tls.${policyDomain}`, "TXT");
  } catch (error) {
    if (absent.has(String((error as { code?: unknown }).code))) return [];
    throw error;
  }
  const records = (answers as (string | string[])[])
    .map((answer) => (Array.isArray(answer) ? answer.join("") : String(answer)))
    .filter((record) => version.test(record));
  if (records.length !== 1) return [];
  return parseTlsRptRecord(records[0]!) ?? [];
}
