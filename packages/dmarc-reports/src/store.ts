// What the plugin keeps between evaluations and reports: counters, not events. Every DMARC
// evaluation of a UTC day falls into one row per (policy domain, source IP, From domain,
// envelope domain, disposition, aligned results, override reasons, DKIM and SPF results) whose
// count grows — exactly one <record> of the day's report. Stores: FileDmarcReportStore (one
// node), PgDmarcReportStore (nodes sharing PostgreSQL), both built on @postern/tls-rpt's
// reporting pieces, so a report is claimed once and sent by one node.
import type { CounterRow, CounterStore } from "@postern/tls-rpt/reporting";

/** Why the disposition differs from the published policy (DMARCbis aggregate reporting §2.1.8). */
export type OverrideType =
  | "local_policy"
  | "mailing_list"
  | "other"
  | "policy_test_mode"
  | "trusted_forwarder"
  | "sampled_out"
  | "forwarded";

export interface DkimAuthResult {
  /** d= */
  readonly domain: string;
  /** s= */
  readonly selector: string;
  /** RFC 8601 §2.7.1: pass, fail, neutral, policy, temperror, permerror, none. */
  readonly result: string;
  /** Why it did not pass ("" when it did). */
  readonly humanResult: string;
}

export interface SpfAuthResult {
  readonly domain: string;
  /** "mfrom"; "helo" for the null sender, whose HELO identity DMARC uses. */
  readonly scope: "mfrom" | "helo";
  /** RFC 8601 §2.7.2: pass, fail, softfail, neutral, none, temperror, permerror. */
  readonly result: string;
}

/** One counter: the evaluations of a day that share every field but `count`. */
export interface DmarcResultRow extends CounterRow {
  readonly sourceIp: string;
  /** The RFC5322.From domain. */
  readonly headerFrom: string;
  /** The RFC5321.MailFrom domain ("" for the null sender). */
  readonly envelopeFrom: string;
  readonly disposition: "none" | "quarantine" | "reject";
  /** The DMARC alignment results. */
  readonly dkim: "pass" | "fail";
  readonly spf: "pass" | "fail";
  readonly reasons: readonly { readonly type: OverrideType; readonly comment: string }[];
  readonly dkimResults: readonly DkimAuthResult[];
  /** null when no SPF result was recorded (null, not undefined: it survives a JSON round trip). */
  readonly spfResult: SpfAuthResult | null;
}

/** The fields that make a counter: all but `count`. */
export function rowKey(row: DmarcResultRow): string {
  return JSON.stringify([
    row.day,
    row.policyDomain,
    row.sourceIp,
    row.headerFrom,
    row.envelopeFrom,
    row.disposition,
    row.dkim,
    row.spf,
    row.reasons.map((reason) => [reason.type, reason.comment]),
    row.dkimResults.map((entry) => [entry.domain, entry.selector, entry.result, entry.humanResult]),
    row.spfResult ? [row.spfResult.domain, row.spfResult.scope, row.spfResult.result] : null,
  ]);
}

export interface DmarcReportStore extends CounterStore<DmarcResultRow> {}
