// What the inbound policy records for other plugins: the session's TLS facts, and what the sender
// asked for the onward delivery of a message (RFC 8689), read by the outbound half.
import type { ClientCertificate, ResultKey } from "@postern/core";
import { resultKey } from "@postern/core";

export interface TlsFacts {
  /** "TLSv1.3", "TLSv1.2". */
  readonly protocol: string;
  /** OpenSSL name of the negotiated cipher ("TLS_AES_256_GCM_SHA384"). */
  readonly cipher: string;
  /** The host name the client asked for with SNI, if any. */
  readonly servername: string | undefined;
  /** The certificate the client presented, on listeners with `requestClientCertificate`. */
  readonly clientCertificate: ClientCertificate | undefined;
  /** The listener the session came in on. */
  readonly listener: string;
}

/** On `session.results` once the session is encrypted (implicit TLS or after STARTTLS). */
export const tlsFacts: ResultKey<TlsFacts> = resultKey<TlsFacts>("tls");

export interface DeliveryTlsRequest {
  /**
   * REQUIRETLS was given on MAIL FROM (RFC 8689 §4): relay only over TLS with a validated
   * certificate (MTA-STS or DANE), to hosts that offer REQUIRETLS, or bounce. Same as
   * `transaction.requireTls`.
   */
  readonly requireTls: boolean;
  /**
   * The message carries "TLS-Required: No" (RFC 8689 §5) and no REQUIRETLS: the sender asks that
   * recipient TLS policy (MTA-STS, DANE) failures not stop delivery. TLS is still tried.
   */
  readonly ignoreRecipientTlsPolicy: boolean;
}

/** On `transaction.results` from MAIL FROM; `ignoreRecipientTlsPolicy` is settled after DATA. */
export const deliveryTlsRequest: ResultKey<DeliveryTlsRequest> = resultKey<DeliveryTlsRequest>("tls-request");
