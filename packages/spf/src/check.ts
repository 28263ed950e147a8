// One SPF evaluation with mailauth (RFC 7208): the MAIL FROM identity, or the HELO identity for
// the null sender (§2.4), with the lookup limits (§4.6.4) and all DNS through core's resolver.

import type { DnsResolver } from "@postern/core";
import { spf as mailauthSpf } from "mailauth";

export const spfResults = ["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"] as const;
export type SpfResultKeyword = (typeof spfResults)[number];

export interface SpfResult {
  readonly result: SpfResultKeyword;
  /** "mailfrom" for a sender, "helo" for the null sender. */
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
    authResults: outcome.info,
    receivedSpf: outcome.header.replace(/^Received-SPF:\s*/i, ""),
  };
}
