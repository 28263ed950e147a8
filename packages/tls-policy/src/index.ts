// @postern/tls-policy — transport security policy, in two halves that share this package:
//
// - inbound (here, the default export): TLS before AUTH and MAIL on chosen listeners, TLS facts
//   and the sender's RFC 8689 request (REQUIRETLS, "TLS-Required: No") recorded as typed results;
// - outbound (MTA-STS, DANE, honouring REQUIRETLS when relaying): being built inside
//   @postern/outbound for now; its policy module is meant to move to src/outbound/ here and be
//   exported by name beside the inbound plugin, reading `deliveryTlsRequest` from the transaction.
//
// Listener settings the inbound policy relies on live in core: the certificates (several, chosen
// by SNI, reloaded on SIGHUP and file change), `minTlsVersion` (TLS 1.2 by default), `ciphers`,
// and AUTH advertised only once the connection is encrypted.
import type { Plugin } from "@postern/core";
import type { InboundTlsPolicyOptions } from "./inbound/options.ts";
import { inboundTlsPolicy } from "./inbound/plugin.ts";

export type { InboundTlsPolicyOptions } from "./inbound/options.ts";
export { inboundTlsPolicy } from "./inbound/plugin.ts";
export type { DeliveryTlsRequest, TlsFacts } from "./inbound/results.ts";
export { deliveryTlsRequest, tlsFacts } from "./inbound/results.ts";

/** Options of the default export; the inbound policy's for now. */
export type TlsPolicyOptions = InboundTlsPolicyOptions;

/** The inbound TLS policy plugin: `tlsPolicy({ requireTls: ["submission", 465] })`. */
export default function tlsPolicy(options: TlsPolicyOptions = {}): Plugin {
  return inboundTlsPolicy(options);
}
