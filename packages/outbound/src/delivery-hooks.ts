// The delivery hooks of the outbound side, as a hook set run by core's generic runner (deadlines,
// order, fail closed) and listed by `postern check` with the SMTP hooks. An operator passes
// handlers as the `hooks` option; a plugin package lists `outboundHooks.handlers({ … })` in its
// `handles`. The set's table says each hook's rule:
// - route: the first decision wins (the option first, then plugins in config order); a handler
//   that throws or hangs defers the delivery (4.3.0 / 4.4.3), never picks a next hop;
// - delivered, deferred, bounced: every handler runs; failures are logged and never change the
//   delivery. The same events go to the observer channel (outboundDelivery) for metrics and logs.
import {
  defineHookSet,
  type EnhancedStatus,
  eventKey,
  type HookContext,
  type HookReturn,
  type HookSet,
} from "@postern/core";
import type { RelayTargetInput } from "./options.ts";
import type { DeliveryReply, MessageEnvelope, RecipientRecord } from "./queue/store.ts";

export interface RouteContext {
  /** The recipient domain being delivered to (lower-case). */
  readonly domain: string;
  readonly message: MessageEnvelope;
  /** The recipients of this message at `domain` being delivered now. */
  readonly recipients: readonly RecipientRecord[];
}

/** Where a route hook sends mail for a domain. */
export type RouteDecision =
  /** Look up the MX of `domain` (another domain than the recipient's, or the default). */
  | { readonly type: "mx"; readonly domain?: string }
  /** A fixed next hop, like a static route. */
  | ({ readonly type: "relay" } & RelayTargetInput)
  /** Fail these recipients at once with a delivery report. */
  | { readonly type: "bounce"; readonly status: EnhancedStatus; readonly text: string }
  /** Try again later. */
  | { readonly type: "defer"; readonly status: EnhancedStatus; readonly text: string };

/** What was in force for a connection (RFC 8460 §4.3.1 policy-type). */
export type TlsPolicyType = "sts" | "tlsa" | "no-policy-found";

/** Why TLS failed, as RFC 8460 §4.3.2 names it (result-type). */
export type TlsFailureType =
  // Negotiation failures (§4.3.2.1)
  | "starttls-not-supported"
  | "certificate-host-mismatch"
  | "certificate-expired"
  | "certificate-not-trusted"
  | "validation-failure"
  // DANE policy failures (§4.3.2.2)
  | "tlsa-invalid"
  | "dnssec-invalid"
  | "dane-required"
  // MTA-STS policy failures (§4.3.2.2)
  | "sts-policy-fetch-error"
  | "sts-policy-invalid"
  | "sts-webpki-invalid";

/** The policy an outcome was judged against, as a TLS report names it (§4.3 "policy"). */
export interface TlsPolicy {
  readonly type: TlsPolicyType;
  /**
   * The domain the policy is defined for: the domain whose MTA-STS policy was looked up; for
   * DANE the TLSA base domain, i.e. the MX host (RFC 8460 §3); else the recipient domain.
   */
  readonly domain: string;
  /** The policy as text: MTA-STS policy lines ("mode: enforce", …) or TLSA records ("3 1 1 ab…"). */
  readonly strings: readonly string[];
  /** The MX pattern of the MTA-STS policy that matched, or the MX host name (DANE, no policy). */
  readonly mxHost?: string | undefined;
}

/**
 * One TLS outcome: a new connection to a next hop (TLS negotiated or not), or a policy that
 * could not be had (an MTA-STS fetch, a TLSA lookup). Reused connections are not counted again.
 */
export interface TlsOutcome {
  readonly policy: TlsPolicy;
  readonly result: "success" | TlsFailureType;
  /** The recipient domain being delivered to (may differ from `policy.domain`); unknown for a TLSA lookup. */
  readonly recipientDomain?: string | undefined;
  /** The MX host name connected to (receiving-mx-hostname), when there was a connection or a host. */
  readonly mxHost?: string | undefined;
  readonly receivingIp?: string | undefined;
  readonly sendingIp?: string | undefined;
  /** A machine-readable reason (failure-reason-code), e.g. "CERT_HAS_EXPIRED" or "http_status_404". */
  readonly reasonCode?: string | undefined;
  /** What happened, in words, for logs and the report's additional information. */
  readonly detail?: string | undefined;
  /** The message whose delivery made the connection; undefined for a policy fetched on its own. */
  readonly queueId?: string | undefined;
  /** When, epoch ms. */
  readonly at: number;
}

export interface DeliveryEvent {
  readonly message: MessageEnvelope;
  readonly recipient: RecipientRecord;
  /** The reply that decided this outcome (from the next hop, or made up locally). */
  readonly reply: DeliveryReply;
  /** Attempts made so far, this one included. */
  readonly attempts: number;
  /**
   * The TLS outcome of each connection this attempt opened to the domain's MX hosts (a reused
   * connection opens none; relays and smarthosts are not reported). Also on `outboundTls`.
   */
  readonly tls?: readonly TlsOutcome[];
}

export interface DeferredEvent extends DeliveryEvent {
  /** When the next attempt is due, epoch ms. */
  readonly nextAttemptAt: number;
}

export interface BouncedEvent extends DeliveryEvent {
  /** Queue ID of the delivery report sent to the envelope sender, when one was sent. */
  readonly dsnId: string | undefined;
}

export interface OutboundHooks {
  /** Choose the next hop for a domain; return nothing to let routing decide. */
  route(context: RouteContext, hookContext: HookContext): HookReturn<RouteDecision>;
  delivered(event: DeliveryEvent, hookContext: HookContext): void | Promise<void>;
  deferred(event: DeferredEvent, hookContext: HookContext): void | Promise<void>;
  bounced(event: BouncedEvent, hookContext: HookContext): void | Promise<void>;
}

const decisionTypes = new Set(["mx", "relay", "bounce", "defer"]);
const ignored = () => undefined;
const observing = { combine: "all", problem: () => undefined, onError: ignored, onTimeout: ignored } as const;

export const outboundHooks: HookSet<OutboundHooks> = defineHookSet<OutboundHooks>("outbound", {
  route: {
    combine: "first",
    when: "choosing the next hop for a recipient domain",
    problem: (value) =>
      typeof value === "object" && value !== null && decisionTypes.has((value as { type?: string }).type ?? "")
        ? undefined
        : 'not a route decision; return { type: "mx" | "relay" | "bounce" | "defer", … }',
    onError: () => ({ type: "defer", status: "4.3.0", text: "Temporary local problem choosing the next hop" }),
    onTimeout: () => ({ type: "defer", status: "4.4.3", text: "Timeout while choosing the next hop" }),
  },
  delivered: { ...observing, when: "a recipient was delivered (every handler runs)" },
  deferred: { ...observing, when: "a recipient's delivery was deferred (every handler runs)" },
  bounced: { ...observing, when: "a recipient bounced (every handler runs)" },
});

/** Outbound's handlers as the `hooks` option takes them: functions or { handler, order, timeoutMs }. */
export type OutboundHookHandlers = Parameters<typeof outboundHooks.handlers>[0];

/** Every delivery outcome, on the observer channel. */
export type OutboundDeliveryEvent =
  | ({ readonly outcome: "delivered" } & DeliveryEvent)
  | ({ readonly outcome: "deferred" } & DeferredEvent)
  | ({ readonly outcome: "bounced" } & BouncedEvent);
export const outboundDelivery = eventKey<OutboundDeliveryEvent>("outbound.delivery");

/** Every TLS outcome of outbound connections and policy lookups (what TLS reports count, RFC 8460). */
export const outboundTls = eventKey<TlsOutcome>("outbound.tls");
