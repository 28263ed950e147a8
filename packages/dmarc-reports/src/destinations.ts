// Where a policy domain wants its aggregate reports, and whether it may: the rua URIs of its
// DMARC record at report time, each destination outside the domain's Organizational Domain
// verified (DMARCbis aggregate reporting §3: a v=DMARC1 TXT record at
// <policy-domain>._report._dmarc.<destination host>, which may replace the URI with one of the
// same host). Only mailto: is sent to; other schemes are listed as unsupported.
import type { DnsResolver } from "@postern/core";
import { createRecordLookup, getOrgDomain } from "./mailauth-record.ts";
import { isDmarcRecord, parseRua, type ReportUri, recordTags } from "./policy-record.ts";

/** A destination the report may go to. */
export interface ReportDestination extends ReportUri {
  readonly address: string;
  /** Outside the policy domain's Organizational Domain (and authorised by its owner). */
  readonly external: boolean;
}

/** A destination of the record not used, and why. */
export interface SkippedDestination {
  readonly uri: string;
  readonly reason: "unsupported-scheme" | "not-authorised" | "override-elsewhere";
  readonly detail: string;
}

const absent = new Set(["ENOTFOUND", "ENODATA", "EBADNAME"]);

async function txt(resolver: DnsResolver, name: string): Promise<string[]> {
  try {
    const answers = (await resolver.resolve(name, "TXT")) as (string | string[])[];
    return answers.map((answer) => (Array.isArray(answer) ? answer.join("") : String(answer)));
  } catch (error) {
    if (absent.has(String((error as { code?: unknown }).code))) return [];
    throw error;
  }
}

/** The one DMARC record at _dmarc.<domain>, or undefined (none, or several: RFC 9989 §4.10). DNS failures throw. */
export async function policyRecord(resolver: DnsResolver, domain: string): Promise<string | undefined> {
  const records = (await txt(resolver, `_dmarc.${domain}`)).filter(isDmarcRecord);
  return records.length === 1 ? records[0]!.trim() : undefined;
}

const hostOf = (address: string) => address.replace(/^.*@/, "").toLowerCase().replace(/\.$/, "");

/**
 * The destinations of a record's rua that may receive reports about `policyDomain`, and the
 * ones skipped. A DNS failure throws: the report waits for the next run rather than go to fewer.
 */
export async function verifiedDestinations(
  resolver: DnsResolver,
  policyDomain: string,
  record: string,
): Promise<{ destinations: ReportDestination[]; skipped: SkippedDestination[] }> {
  const lookup = createRecordLookup(resolver.resolve);
  const orgDomain = (domain: string) => getOrgDomain(domain, lookup);
  const policyOrg = await orgDomain(policyDomain.toLowerCase());
  const destinations: ReportDestination[] = [];
  const skipped: SkippedDestination[] = [];
  for (const uri of parseRua(recordTags(record)?.rua)) {
    if (!uri.address) {
      skipped.push({ uri: uri.uri, reason: "unsupported-scheme", detail: "only mailto: destinations are sent to" });
      continue;
    }
    const host = hostOf(uri.address);
    if ((await orgDomain(host)) === policyOrg) {
      destinations.push({ ...uri, address: uri.address, external: false });
      continue;
    }
    const name = `${policyDomain.toLowerCase()}._report._dmarc.${host}`;
    const authorising = (await txt(resolver, name)).filter(isDmarcRecord);
    if (authorising.length === 0) {
      skipped.push({ uri: uri.uri, reason: "not-authorised", detail: `no v=DMARC1 record at ${name}` });
      continue;
    }
    // The destination's owner may name where reports go instead, but only on the same host.
    const override = authorising.flatMap((text) => parseRua(recordTags(text)?.rua));
    if (override.length === 0) {
      destinations.push({ ...uri, address: uri.address, external: true });
      continue;
    }
    if (override.some((entry) => !entry.address || hostOf(entry.address) !== host)) {
      skipped.push({
        uri: uri.uri,
        reason: "override-elsewhere",
        detail: `${name} names a destination on another host`,
      });
      continue;
    }
    for (const entry of override) destinations.push({ ...entry, address: entry.address!, external: true });
  }
  // One report per mailbox, however often it is named.
  const unique = new Map(destinations.map((destination) => [destination.address.toLowerCase(), destination]));
  return { destinations: [...unique.values()], skipped };
}
