// Asks the lists about one client, all lists at once, through the server's resolver (so the
// configured DNS servers, deadline and cache apply). A lookup never throws: every failure becomes
// an "error" entry, and the policy decides later whether an error may block mail.
import { type DnsResolver, type IpAddress, reversedName } from "@postern/core";
import type { ResolvedZone } from "./options.ts";
import type { DnsblResult, DnsblZoneResult } from "./result.ts";

/** NXDOMAIN and NODATA: the list has no entry for the client. */
const notListed = new Set(["ENOTFOUND", "ENODATA"]);
/** Longest TXT reason kept; it ends up in an SMTP reply line. */
const maxReasonLength = 200;

export async function lookUpClient(
  resolver: DnsResolver,
  address: IpAddress,
  zones: readonly ResolvedZone[],
  threshold: number,
): Promise<DnsblResult> {
  const applicable = zones.filter((zone) => address.kind() === "ipv4" || zone.ipv6);
  const results = await Promise.all(applicable.map((zone) => lookUpZone(resolver, address, zone)));
  const score = results.reduce((sum, result) => sum + result.weight, 0);
  const status =
    score >= threshold ? "listed" : results.some((result) => result.status === "error") ? "error" : "clean";
  return { ip: address.toString(), status, score, threshold, zones: results };
}

async function lookUpZone(resolver: DnsResolver, address: IpAddress, zone: ResolvedZone): Promise<DnsblZoneResult> {
  const name = reversedName(address, zone.zone);
  let answers: string[];
  try {
    answers = ((await resolver.resolve(name, "A")) as string[]).slice().sort();
  } catch (error) {
    const code = String((error as { code?: unknown }).code ?? (error as Error).message);
    if (notListed.has(code)) return { zone: zone.zone, status: "clean", answers: [], weight: 0 };
    return { zone: zone.zone, status: "error", answers: [], weight: 0, error: code };
  }

  // RFC 5782 §2.3: listings are 127.0.0.0/8 answers. Anything else means the zone is wildcarded
  // or a resolver rewrites NXDOMAIN; 127.255.255.0/24 is how Spamhaus and others say "this query
  // was refused" (e.g. from a public resolver). Neither may count as a listing.
  const refused = answers.filter((answer) => answer.startsWith("127.255.255."));
  const bogus = answers.filter((answer) => !answer.startsWith("127."));
  if (refused.length > 0 || bogus.length > 0) {
    const error =
      refused.length > 0
        ? `query refused by the list (${refused.join(", ")})`
        : `unexpected answer ${bogus.join(", ")}`;
    return { zone: zone.zone, status: "error", answers, weight: 0, error };
  }

  const counted = zone.codes ? answers.filter((answer) => zone.codes?.[answer] !== undefined) : answers;
  if (counted.length === 0) return { zone: zone.zone, status: "clean", answers, weight: 0 };
  // With per-answer weights, a client several answers name counts once, with the heaviest.
  const weight = zone.codes ? Math.max(...counted.map((answer) => zone.codes![answer]!)) : zone.weight;
  const reason = await listingReason(resolver, name);
  return { zone: zone.zone, status: "listed", answers, weight, ...(reason ? { reason } : {}) };
}

/** The TXT record under the same name, if the list publishes one; a missing reason is no error. */
async function listingReason(resolver: DnsResolver, name: string): Promise<string | undefined> {
  try {
    const records = (await resolver.resolve(name, "TXT")) as string[][];
    // The reason is shown in an SMTP reply line, which must be printable ASCII.
    const text = records[0]
      ?.join("")
      .replace(/[^\x20-\x7e]+/g, " ")
      .trim();
    if (!text) return undefined;
    return text.length > maxReasonLength ? `${text.slice(0, maxReasonLength - 3)}...` : text;
  } catch {
    return undefined;
  }
}
