// One SPF evaluation with mailauth (RFC 7208): the MAIL FROM identity, or the HELO identity (for
// the null sender, §2.4, and on its own, §2.3), with the lookup limits (§4.6.4) and all DNS
// through core's resolver.

import { isIP } from "node:net";
import { type DnsResolver, normalizeDomain } from "@postern/core";
import { spf as mailauthSpf } from "mailauth";

export const spfResults = ["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"] as const;
export type SpfResultKeyword = (typeof spfResults)[number];

export interface SpfResult {
  readonly result: SpfResultKeyword;
  /** "mailfrom" for a sender, "helo" for the HELO identity (the null sender's, or checked on its own). */
  readonly identity: "mailfrom" | "helo";
  /** The domain whose policy was evaluated. */
  readonly domain: string;
  /** The identity checked, as mailauth reports it (postmaster@helo for the null sender). */
  readonly sender: string;
  readonly ip: string;
  readonly helo: string | undefined;
  /** Why, in words (also the Received-SPF comment). */
  readonly comment: string | undefined;
  /** The domain's exp= text for a fail (third-party text: quote it, never trust it). */
  readonly explanation: string | undefined;
  /** The SPF record of the domain, when one was found. */
  readonly record: string | undefined;
  /** DNS lookups counted against the limits. */
  readonly lookups: { readonly count: number; readonly void: number; readonly limit: number } | undefined;
  /** The resinfo for Authentication-Results, e.g. "spf=pass (…) smtp.mailfrom=example.org". */
  readonly authResults: string;
  /** The value of the Received-SPF field (RFC 7208 §9.1). */
  readonly receivedSpf: string;
}

export interface SpfCheckInput {
  /** The MAIL FROM address; "" checks the HELO identity (as for the null sender, RFC 7208 §2.3). */
  sender: string;
  ip: string;
  helo: string | undefined;
  hostname: string;
  /** Core's resolver.resolve (dns.promises.resolve's shape, as mailauth takes it). */
  resolver: DnsResolver["resolve"];
  maxLookups: number;
  maxVoidLookups: number;
  timeoutMs: number;
}

export async function checkSpf(input: SpfCheckInput): Promise<SpfResult> {
  const outcome = await mailauthSpf({
    sender: input.sender || undefined,
    ip: input.ip,
    helo: input.helo,
    mta: input.hostname,
    resolver: input.resolver,
    maxElapsedTime: input.timeoutMs,
    // mailauth supports both limits but its types do not list them.
    ...({ maxResolveCount: input.maxLookups, maxVoidCount: input.maxVoidLookups } as object),
  });
  const result = (spfResults as readonly string[]).includes(outcome.status.result)
    ? (outcome.status.result as SpfResultKeyword)
    : "temperror";
  return {
    result,
    identity: input.sender ? "mailfrom" : "helo",
    domain: outcome.domain,
    sender: outcome["envelope-from"] ?? input.sender,
    ip: input.ip,
    helo: input.helo,
    comment: outcome.status.comment,
    explanation: outcome.explanation,
    record: outcome.rr,
    lookups: outcome.lookups
      ? { count: outcome.lookups.count, void: outcome.lookups.void, limit: outcome.lookups.limit }
      : undefined,
    // mailauth names both identities in each entry; a HELO check's is about smtp.helo alone.
    authResults: input.sender ? outcome.info : outcome.info.replace(/\s+smtp\.mailfrom=\S+/, ""),
    // RFC 7208 §9.1: the identity key says which was checked (mailauth leaves it out).
    receivedSpf: `${outcome.header.replace(/^Received-SPF:\s*/i, "").replace(/\s+$/, "")}${input.sender ? "" : " identity=helo;"}`,
  };
}

/**
 * Whether a HELO name can be checked (RFC 7208 §2.3): a fully qualified domain name, not an
 * address literal or a bare word.
 */
export function checkableHelo(name: string | undefined): name is string {
  if (!name || name.startsWith("[") || isIP(name) !== 0) return false;
  const domain = normalizeDomain(name);
  return domain !== undefined && domain.includes(".");
}
