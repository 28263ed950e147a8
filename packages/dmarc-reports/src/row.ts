// An evaluation to a counter: what @postern/dmarc's dmarcEvaluated event says, in the terms of
// a report <record>. Evaluations without a policy (no record, no single author domain) and those
// left undecided (temperror; the client is asked to retry, or nothing is known) are not reported.
import type { DmarcEvaluatedEvent } from "@postern/dmarc";
import { utcDay } from "@postern/tls-rpt/reporting";
import { recordTags } from "./policy-record.ts";
import type { DkimAuthResult, DmarcResultRow, SpfAuthResult } from "./store.ts";

/** The DMARCbis aggregate report's limit of DKIM results per row (§2.1.6). */
const maxSignatures = 100;

const domainOf = (address: string) => address.replace(/^.*@/, "").toLowerCase();

function dkimResults(event: DmarcEvaluatedEvent, headerFrom: string): DkimAuthResult[] {
  const signatures = event.dkim.signatures.filter((signature) => signature.domain);
  // The draft's order of preference: passing and strictly aligned, passing and relaxed-aligned,
  // other passing ones, then those that did not pass.
  const aligned = event.result.alignment.dkim?.toLowerCase();
  const rank = (domain: string, result: string) => {
    if (result !== "pass") return 3;
    if (domain === headerFrom) return 0;
    return domain === aligned ? 1 : 2;
  };
  return signatures
    .map((signature) => ({
      domain: signature.domain!.toLowerCase(),
      selector: signature.selector ?? "",
      result: signature.result,
      humanResult: signature.result === "pass" ? "" : (signature.comment ?? ""),
    }))
    .sort((a, b) => rank(a.domain, a.result) - rank(b.domain, b.result))
    .slice(0, maxSignatures);
}

function spfResult(event: DmarcEvaluatedEvent): SpfAuthResult | null {
  // DMARC uses the MAIL FROM identity; for the null sender, HELO's (what @postern/dmarc aligns).
  const scope = event.transaction.mailFrom.address ? "mfrom" : "helo";
  const property = scope === "mfrom" ? "smtp.mailfrom" : "smtp.helo";
  const entry = event.spf.find((candidate) => candidate.properties?.[property]);
  if (!entry) return null;
  return { domain: domainOf(entry.properties![property]!), scope, result: entry.result ?? "none" };
}

/** The counter an evaluation adds to, or undefined when it is not reported. */
export function rowOf(event: DmarcEvaluatedEvent): DmarcResultRow | undefined {
  const { result } = event;
  if (result.result !== "pass" && result.result !== "fail") return undefined;
  if (!result.policyDomain || !result.fromDomain) return undefined;
  const action = result.disposition.action;
  if (action === "defer") return undefined;
  const headerFrom = result.fromDomain.toLowerCase();
  const reasons: DmarcResultRow["reasons"][number][] = [];
  const override = result.disposition.override;
  if (override === "trusted_forwarder") {
    reasons.push({ type: "trusted_forwarder", comment: "ARC chain of a trusted sealer passed" });
  } else if (override === "local_policy") {
    reasons.push({ type: "local_policy", comment: "" });
  } else if (result.result === "fail" && recordTags(result.record ?? "")?.t === "y") {
    // t=y: the policy was applied one level lower than published.
    reasons.push({ type: "policy_test_mode", comment: "" });
  }
  return {
    day: utcDay(event.at),
    policyDomain: result.policyDomain.toLowerCase(),
    sourceIp: event.transaction.session.remoteAddress.replace(/^::ffff:/, ""),
    headerFrom,
    envelopeFrom: domainOf(event.transaction.mailFrom.address),
    disposition: action === "accept" ? "none" : action,
    dkim: result.alignment.dkim ? "pass" : "fail",
    spf: result.alignment.spf ? "pass" : "fail",
    reasons,
    dkimResults: dkimResults(event, headerFrom),
    spfResult: spfResult(event),
    count: 1,
  };
}
