// The DMARC Policy Record as reports need it: the published tags for <policy_published>, and the
// rua URIs with their optional size limits ("mailto:dmarc@example.com!10m"). Tag-list parsing is
// mailauth's (the parser its DMARC evaluation uses), so a record reads the same in both places.
import { splitSizeLimit } from "@postern/tls-rpt/reporting";
import { parseDmarcRecord } from "./mailauth-record.ts";

/** The published policy as <policy_published> reports it (unspecified tags at their defaults). */
export interface PublishedPolicy {
  readonly domain: string;
  readonly p: "none" | "quarantine" | "reject";
  readonly sp: "none" | "quarantine" | "reject" | undefined;
  readonly np: "none" | "quarantine" | "reject" | undefined;
  readonly adkim: "r" | "s";
  readonly aspf: "r" | "s";
  readonly testing: "y" | "n";
  readonly fo: string;
}

/** One aggregate-report destination of a record. */
export interface ReportUri {
  /** The URI as published, without the size suffix. */
  readonly uri: string;
  /** The mailbox of a mailto: URI (undefined for other schemes, which are not sent to). */
  readonly address: string | undefined;
  /** The largest report the destination takes, in bytes (undefined: no limit). */
  readonly maxBytes: number | undefined;
}

const version = /^v[ \t]*=[ \t]*DMARC1[ \t]*(;|$)/i;
const policies = new Set(["none", "quarantine", "reject"]);

/** True when a TXT string is a DMARC record (v=DMARC1 first). */
export function isDmarcRecord(text: string): boolean {
  return version.test(text.trim());
}

/** The tags of a record, lower-case names (mailauth's reading), or undefined when it is not one. */
export function recordTags(text: string): Record<string, string> | undefined {
  if (!isDmarcRecord(text)) return undefined;
  const parsed = parseDmarcRecord(text.trim());
  if (!parsed) return undefined;
  return Object.fromEntries(Object.entries(parsed).map(([name, value]) => [name, String(value)]));
}

const policyTag = (value: string | undefined) =>
  value && policies.has(value) ? (value as PublishedPolicy["p"]) : undefined;

/** The <policy_published> of a record published at `domain`. */
export function publishedPolicy(domain: string, text: string): PublishedPolicy | undefined {
  const tags = recordTags(text);
  if (!tags) return undefined;
  return {
    domain,
    // A record without a valid p that asks for reports is applied as p=none (RFC 9989 §4.10.1).
    p: policyTag(tags.p) ?? "none",
    sp: policyTag(tags.sp),
    np: policyTag(tags.np),
    adkim: tags.adkim === "s" ? "s" : "r",
    aspf: tags.aspf === "s" ? "s" : "r",
    testing: tags.t === "y" ? "y" : "n",
    fo: tags.fo ?? "0",
  };
}

/** The rua URIs of a record (a value of the rua tag), in the order given. */
export function parseRua(value: string | undefined): ReportUri[] {
  if (!value) return [];
  const out: ReportUri[] = [];
  for (const part of value.split(",")) {
    const entry = part.trim();
    if (!entry) continue;
    // The size suffix (RFC 7489 §6.2, obsolete in DMARCbis but still published), read as TLS-RPT reads it.
    const { uri, maxBytes } = splitSizeLimit(entry);
    let address: string | undefined;
    if (/^mailto:/i.test(uri)) {
      try {
        // RFC 6068: %-escapes and ?headers may follow; only the mailbox counts.
        address = decodeURIComponent(uri.slice("mailto:".length).split("?")[0]!);
      } catch {
        address = undefined;
      }
      if (address && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(address)) address = undefined;
    }
    out.push({ uri, address, maxBytes });
  }
  return out;
}
