// Hooks of the outbound side. Core's Plugin type knows the SMTP server's hooks only, so the
// delivery hooks live here: an operator passes them as the `hooks` option, and a plugin package
// carries them on its plugin object (withOutboundHooks) so that listing it in the config is
// enough. Outbound finds those in setup() through ServerContext.plugins.
//
// Combining rules: `route` — the first hook returning a decision wins (the option first, then
// plugins in config order); `delivered`, `deferred`, `bounced` — all run, errors are logged and
// never change the delivery.
import type { EnhancedStatus, Plugin } from "@postern/core";
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

export interface DeliveryEvent {
  readonly message: MessageEnvelope;
  readonly recipient: RecipientRecord;
  /** The reply that decided this outcome (from the next hop, or made up locally). */
  readonly reply: DeliveryReply;
  /** Attempts made so far, this one included. */
  readonly attempts: number;
}

export interface DeferredEvent extends DeliveryEvent {
  /** When the next attempt is due, epoch ms. */
  readonly nextAttemptAt: number;
}

export interface BouncedEvent extends DeliveryEvent {
  /** Queue ID of the delivery report sent to the envelope sender, when one was sent. */
  readonly dsnId: string | undefined;
}

type Maybe<T> = T | Promise<T>;

export interface OutboundHooks {
  /** Choose the next hop for a domain; return nothing to let routing decide. */
  route?(context: RouteContext): Maybe<RouteDecision | undefined | void>;
  delivered?(event: DeliveryEvent): Maybe<void>;
  deferred?(event: DeferredEvent): Maybe<void>;
  bounced?(event: BouncedEvent): Maybe<void>;
}

/** The property under which a plugin object carries its outbound hooks. */
export const outboundHooksKey: unique symbol = Symbol.for("@postern/outbound:hooks");

export interface OutboundExtension {
  readonly [outboundHooksKey]: OutboundHooks;
}

/** Attaches outbound hooks to a plugin object, so outbound finds them when both are configured. */
export function withOutboundHooks<P extends Plugin>(plugin: P, hooks: OutboundHooks): P & OutboundExtension {
  return Object.assign(plugin, { [outboundHooksKey]: hooks });
}

export function outboundHooksOf(plugin: Plugin): OutboundHooks | undefined {
  return (plugin as Partial<OutboundExtension>)[outboundHooksKey];
}
