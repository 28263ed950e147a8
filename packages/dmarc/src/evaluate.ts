// DMARC (RFC 9989) with mailauth: the DNS Tree Walk for the policy and the Organizational
// Domain, and alignment of the SPF and DKIM results other plugins already computed.

import type { DnsResolver } from "@postern/core";
import type { DkimResult } from "@postern/dkim";
import { evaluateDmarc } from "mailauth/lib/dmarc/index.js";
import type { ArcResult } from "./arc.ts";

export type DmarcPolicy = "none" | "quarantine" | "reject";

export interface DmarcResult {
  /** none: no usable record or no single author domain; temperror: DNS failed. */
  readonly result: "pass" | "fail" | "none" | "temperror";
  /** The RFC5322.From domain. */
  readonly fromDomain: string | undefined;
  /** The Organizational Domain found by the Tree Walk. */
  readonly orgDomain: string | undefined;
  /** Where the applied record was published. */
  readonly policyDomain: string | undefined;
  /** The policy for this From domain (p, sp or np; one level lower with t=y). */
  readonly policy: DmarcPolicy | undefined;
  readonly record: string | undefined;
  /** The aligned identifiers, if any. */
  readonly alignment: { readonly spf: string | undefined; readonly dkim: string | undefined };
  /** Why DMARC could not be evaluated (RFC 9989 §5.3.1), e.g. "multiple-author-domains". */
  readonly skipReason: string | undefined;
  readonly comment: string | undefined;
  /** The resinfo for Authentication-Results. */
  readonly authResults: string;
}

const policies = new Set(["none", "quarantine", "reject"]);

export async function evaluate(input: {
  /** Domains whose SPF check passed (the MAIL FROM domain, or HELO's for the null sender). */
  spfPassDomains: readonly string[];
  dkim: DkimResult;
  arc: ArcResult | undefined;
  resolver: DnsResolver["resolve"];
}): Promise<DmarcResult> {
  const { dkim } = input;
  const outcome = await evaluateDmarc({
    headerFrom: [...dkim.headerFrom],
    fromFields: dkim.fromFields,
    // Only a passing SPF identity can align (RFC 9989 §4.4); for the null sender it is HELO's.
    spfDomains: [...input.spfPassDomains],
    dkimDomains: dkim.signatures
      .filter((signature) => signature.result === "pass" && signature.domain)
      .map((signature) => ({ domain: signature.domain!, underSized: signature.unsignedBodyBytes })),
    ...(input.arc ? { arcResult: input.arc.validation } : {}),
    resolver: input.resolver,
  });
  const response = outcome.response;
  if (!response) {
    const reason = outcome.reason ?? "no-author-domain";
    return {
      result: "none",
      fromDomain: undefined,
      orgDomain: undefined,
      policyDomain: undefined,
      policy: undefined,
      record: undefined,
      alignment: { spf: undefined, dkim: undefined },
      skipReason: reason,
      comment: reason,
      authResults: `dmarc=none (${reason.replace(/-/g, " ")})`,
    };
  }
  const keyword = response.status.result;
  return {
    result: keyword === "pass" || keyword === "fail" || keyword === "none" ? keyword : "temperror",
    fromDomain: response.status.header?.from,
    orgDomain: response.domain,
    policyDomain: response.policyDomain,
    policy: policies.has(response.policy) ? (response.policy as DmarcPolicy) : undefined,
    record: response.rr,
    alignment: { spf: response.alignment?.spf.result, dkim: response.alignment?.dkim.result },
    skipReason: undefined,
    comment: response.status.comment,
    authResults: response.info,
  };
}
