// DKIM verification (RFC 6376, RFC 8463 for ed25519) with mailauth, over the message bytes as
// received: every DKIM-Signature is checked, key records come through core's resolver.
import type { Readable } from "node:stream";
import type { DnsResolver } from "@postern/core";
import { type DKIMResult, type DKIMVerifyResult, dkimVerify } from "mailauth";

export type DkimResultKeyword = "pass" | "fail" | "neutral" | "policy" | "temperror" | "permerror" | "none";

export interface DkimSignatureResult {
  readonly result: DkimResultKeyword;
  /** d= */
  readonly domain: string | undefined;
  /** s= */
  readonly selector: string | undefined;
  /** a=, e.g. "rsa-sha256" or "ed25519-sha256". */
  readonly algorithm: string | undefined;
  /** Why, when it did not pass (e.g. "bad signature", "body hash did not verify", "weak key"). */
  readonly comment: string | undefined;
  /** RSA key size of the published key. */
  readonly keyBits: number | undefined;
  /** The l= value when the signature has one. */
  readonly bodyLengthLimit: number | undefined;
  /** Body bytes after the l= limit, which the signature does not cover (added content). */
  readonly unsignedBodyBytes: number | undefined;
  /** The key record has t=y: the domain is testing DKIM. */
  readonly testing: boolean;
  /** The resinfo for Authentication-Results. */
  readonly authResults: string;
}

export interface DkimResult {
  /** One entry per DKIM-Signature field; empty when the message is not signed. */
  readonly signatures: readonly DkimSignatureResult[];
  /** The resinfo entries for Authentication-Results ("dkim=none …" when unsigned). */
  readonly authResults: readonly string[];
  /** The addresses of the From field(s), for DMARC. */
  readonly headerFrom: readonly string[];
  readonly fromFields: number;
  /** mailauth's whole result: its (hidden) ARC chain and parsed headers serve @postern/dmarc. */
  readonly verification: DKIMVerifyResult;
}

export interface DkimVerifyInput {
  /** Core's resolver.resolve (dns.promises.resolve's shape, as mailauth takes it). */
  resolver: DnsResolver["resolve"];
  minKeyBits: number;
  rejectRsaSha1: boolean;
  sender: string;
}

const keywords = new Set<string>(["pass", "fail", "neutral", "policy", "temperror", "permerror", "none"]);

/**
 * mailauth's lenient mode reports a body hash mismatch as neutral; RFC 6376 §6.1.3 makes it a
 * PERMFAIL, which RFC 8601 §2.7.1 reports as fail — what an operator reading the header expects
 * of a body changed in transit. Everything else keeps mailauth's lenient reading.
 */
function bodyHashMismatchIsFail(entry: DKIMResult): void {
  if (entry.status.result === "neutral" && entry.status.comment === "body hash did not verify") {
    entry.status.result = "fail";
    entry.info = entry.info.replace(/^dkim=neutral\b/, "dkim=fail");
  }
}

export async function verifyDkim(input: Readable, options: DkimVerifyInput): Promise<DkimResult> {
  const verification = await dkimVerify(input, {
    resolver: options.resolver,
    minBitLength: options.minKeyBits,
    rejectRsaSha1: options.rejectRsaSha1,
    sender: options.sender || undefined,
  });
  const signed = verification.results.filter((entry) => entry.signingDomain !== undefined);
  for (const entry of signed) bodyHashMismatchIsFail(entry);
  const signatures = signed.map(
    (entry): DkimSignatureResult => ({
      result: keywords.has(entry.status.result) ? (entry.status.result as DkimResultKeyword) : "temperror",
      domain: entry.signingDomain,
      selector: entry.selector,
      algorithm: entry.algo,
      comment: entry.status.comment,
      keyBits: entry.modulusLength,
      bodyLengthLimit: entry.canonBodyLengthLimited ? entry.canonBodyLengthLimit : undefined,
      unsignedBodyBytes: entry.status.underSized,
      testing: entry.status.testing === true,
      authResults: entry.info,
    }),
  );
  return {
    signatures,
    authResults: verification.results.map((entry) => entry.info),
    headerFrom: verification.headerFrom,
    fromFields: verification.fromFields,
    verification,
  };
}
