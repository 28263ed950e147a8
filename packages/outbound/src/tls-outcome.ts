// TLS outcomes in RFC 8460's terms: Node's certificate errors and mailauth's MTA-STS fetch errors
// mapped to report result types, policies written as a report shows them, and the emitter that
// puts each outcome on the observer channel (`outboundTls`) — only while someone listens.
import type { EventChannel } from "@postern/core";
import type { MTASTSPolicy } from "mailauth";
import { outboundTls, type TlsFailureType, type TlsOutcome } from "./delivery-hooks.ts";

export interface TlsFailure {
  readonly type: TlsFailureType;
  /** The machine-readable cause (failure-reason-code), e.g. OpenSSL's verify code. */
  readonly code?: string | undefined;
}

// Node reports a failed verification by OpenSSL's code on `authorizationError` and by its text
// in a handshake error ("Error initiating TLS - certificate has expired"): both are known here.
const certificateErrors: readonly { code: string; text: RegExp; type: TlsFailureType }[] = [
  {
    code: "ERR_TLS_CERT_ALTNAME_INVALID",
    text: /does not match certificate's altnames/i,
    type: "certificate-host-mismatch",
  },
  { code: "HOSTNAME_MISMATCH", text: /hostname mismatch/i, type: "certificate-host-mismatch" },
  { code: "CERT_HAS_EXPIRED", text: /certificate has expired/i, type: "certificate-expired" },
  {
    code: "SELF_SIGNED_CERT_IN_CHAIN",
    text: /self[- ]signed certificate in certificate chain/i,
    type: "certificate-not-trusted",
  },
  { code: "DEPTH_ZERO_SELF_SIGNED_CERT", text: /self[- ]signed certificate/i, type: "certificate-not-trusted" },
  {
    code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    text: /unable to verify the first certificate/i,
    type: "certificate-not-trusted",
  },
  {
    code: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    text: /unable to get local issuer certificate/i,
    type: "certificate-not-trusted",
  },
  { code: "UNABLE_TO_GET_ISSUER_CERT", text: /unable to get issuer certificate/i, type: "certificate-not-trusted" },
  { code: "CERT_UNTRUSTED", text: /certificate not trusted/i, type: "certificate-not-trusted" },
  { code: "CERT_REJECTED", text: /certificate rejected/i, type: "certificate-not-trusted" },
  { code: "INVALID_CA", text: /invalid CA certificate/i, type: "certificate-not-trusted" },
  { code: "CERT_NOT_YET_VALID", text: /certificate is not yet valid/i, type: "validation-failure" },
];

/**
 * The result type of a failed certificate check or handshake, from Node's code or message; a
 * failure without a known certificate cause (a broken handshake) is a validation failure.
 */
export function certificateFailure(codeOrMessage: string | undefined): TlsFailure {
  const said = codeOrMessage ?? "";
  const known = certificateErrors.find((entry) => entry.code === said || entry.text.test(said));
  if (known) return { type: known.type, code: known.code };
  return { type: "validation-failure", code: said ? said.slice(0, 120) : undefined };
}

// mailauth's error codes for a policy that was fetched but is not a valid policy.
const invalidPolicyCodes = /^(invalid_sts_|multi_sts_records$|invalid_content_type$|policy_too_large$)/;

/** Why an MTA-STS policy could not be had: not fetched, fetched but invalid, or a bad HTTPS certificate. */
export function stsFetchFailure(error: (Error & { code?: unknown }) | undefined): TlsFailure {
  const code = typeof error?.code === "string" ? error.code : undefined;
  if (code && invalidPolicyCodes.test(code)) return { type: "sts-policy-invalid", code };
  const certificate = certificateErrors.find(
    (entry) => entry.code === code || (error?.message !== undefined && entry.text.test(error.message)),
  );
  if (certificate) return { type: "sts-webpki-invalid", code: certificate.code };
  return { type: "sts-policy-fetch-error", code: code ?? error?.message?.slice(0, 120) };
}

/** An MTA-STS policy as the lines of its policy file (RFC 8460 §4.3.1 policy-string). */
export function stsPolicyStrings(policy: MTASTSPolicy | undefined): string[] {
  if (!policy?.id) return [];
  const { mode, mx, maxAge, version } = policy as MTASTSPolicy & { maxAge?: number; version?: string };
  return [
    `version: ${version ?? "STSv1"}`,
    `mode: ${mode}`,
    ...(mx ?? []).map((host) => `mx: ${host}`),
    ...(maxAge !== undefined ? [`max_age: ${maxAge}`] : []),
  ];
}

/** The failure-reason-code of an MX host an MTA-STS policy's mx patterns do not name. */
export const mxNotInPolicy = "mx-not-in-policy";

/**
 * The outcome of an MX host an MTA-STS `enforce` policy rules out (RFC 8461 §4.1): skipped before
 * any connection, so no IP and no certificate, but a failure to report all the same. RFC 8460 has
 * no result type of its own for it (certificate-host-mismatch is about a presented certificate):
 * it is a `validation-failure`, which §4.3.2 asks to come with a failure-reason-code. The policy
 * names no mx pattern the host matches, so the outcome's policy has no mx-host.
 */
export function stsRefusedOutcome(
  refused: { readonly name: string; readonly policyDomain: string },
  policy: MTASTSPolicy | undefined,
  delivery: { readonly recipientDomain: string; readonly queueId?: string | undefined },
): Omit<TlsOutcome, "at"> {
  return {
    policy: { type: "sts", domain: refused.policyDomain, strings: stsPolicyStrings(policy) },
    result: "validation-failure",
    recipientDomain: delivery.recipientDomain,
    mxHost: refused.name,
    reasonCode: mxNotInPolicy,
    detail: `MTA-STS (enforce): ${refused.name} is not an MX host the policy of ${refused.policyDomain} names; not connected to`,
    queueId: delivery.queueId,
  };
}

/** A TLSA record in presentation form ("3 1 1 <hex>"). */
export function tlsaString(record: {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer | Uint8Array;
}): string {
  return `${record.usage} ${record.selector} ${record.matchingType} ${Buffer.from(record.data).toString("hex")}`;
}

/** Puts TLS outcomes on the observer channel; building one is skipped when nobody observes. */
export class TlsOutcomes {
  readonly #events: EventChannel | undefined;

  constructor(events: EventChannel | undefined) {
    this.#events = events;
  }

  get wanted(): boolean {
    return Boolean(this.#events?.observed(outboundTls));
  }

  /** Emits the outcome `build` makes, building it only when someone listens. */
  record(build: () => Omit<TlsOutcome, "at">): void {
    if (!this.#events?.observed(outboundTls)) return;
    this.#events.emit(outboundTls, { ...build(), at: Date.now() });
  }

  emit(outcome: TlsOutcome): void {
    if (this.#events?.observed(outboundTls)) this.#events.emit(outboundTls, outcome);
  }
}
