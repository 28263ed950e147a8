// The objects hooks see. A Session lives as long as the connection; a Transaction from MAIL FROM
// until the reply to DATA (or RSET). Both carry a typed result store for plugins to share results.
import type { Results } from "./result-key.ts";
import type { Refusal } from "./verdict.ts";

export type ListenerTls = "none" | "starttls" | "implicit";

export interface ListenerInfo {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly tls: ListenerTls;
}

export interface TlsInfo {
  readonly protocol: string;
  readonly cipher: string;
  /** The name the client asked for with SNI, if any. */
  readonly servername: string | undefined;
  /** The certificate the client presented, on listeners with `requestClientCertificate`. */
  readonly clientCertificate: ClientCertificate | undefined;
}

export interface ClientCertificate {
  readonly subject: string;
  readonly issuer: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  readonly fingerprint256: string;
  readonly validTo: Date;
  /** The certificate chains to a trusted CA (Node's default store). */
  readonly authorized: boolean;
}

export interface Session {
  readonly id: string;
  readonly listener: ListenerInfo;
  /** The client's address (after a trusted PROXY header, the proxied client's). */
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /**
   * The client's reverse DNS (PTR) name as smtp-server looked it up, or undefined. Not
   * forward-confirmed: a plugin that trusts it checks that the name resolves back to the address.
   */
  readonly clientHostname: string | undefined;
  /** The name given with HELO/EHLO, once given. */
  readonly heloName: string | undefined;
  /** "EHLO" or "HELO", once given. */
  readonly greeting: "EHLO" | "HELO" | undefined;
  /** TLS facts once the connection is encrypted (implicit TLS or after STARTTLS). */
  readonly tls: TlsInfo | undefined;
  /** The authenticated user, once AUTH succeeded. */
  readonly user: string | undefined;
  /** Failed AUTH attempts in this session (limits and logs read it; core only counts). */
  readonly authFailures: number;
  readonly results: Results;
  readonly connectedAt: Date;
  /** How many transactions this connection has completed. */
  readonly transactionCount: number;
}

/** ESMTP parameters of MAIL FROM / RCPT TO, keyed by upper-case name (SIZE, BODY, NOTIFY …). */
export type EsmtpParameters = Readonly<Record<string, string | true>>;

export interface Address {
  /** The address as given, without angle brackets; "" for the null sender. */
  readonly address: string;
  readonly parameters: EsmtpParameters;
}

export interface Recipient extends Address {
  /** Set when a plugin claims the recipient: "local", "relay" or a custom route name. */
  readonly route: string;
  /** DSN NOTIFY and ORCPT (RFC 3461), when given. */
  readonly dsn: { readonly notify?: readonly string[]; readonly orcpt?: string } | undefined;
  /**
   * The address given at RCPT TO that this recipient comes from: itself, or the alias, list or
   * forward it was expanded from (for DSNs and logs: RFC 3461's ORCPT); for a recipient a data
   * hook added, the address added.
   */
  readonly original: string;
  /** The subaddress detail a directory split off ("news" for alice+news@…), for stores that file by it. */
  readonly detail: string | undefined;
  /** The envelope sender for delivering to this recipient (e.g. SRS when forwarding); MAIL FROM when undefined. */
  readonly sender: string | undefined;
}

/** What addRecipient() did. */
export type AddRecipientOutcome =
  | { readonly ok: true; readonly recipients: readonly Recipient[] }
  | { readonly ok: false; readonly refusal: Refusal; readonly plugin: string | undefined };

export interface Transaction {
  /** The queue ID, also written into the Received header and the 250 reply. */
  readonly id: string;
  readonly session: Session;
  readonly mailFrom: Address;
  /** Recipients accepted so far, each with its route. */
  readonly recipients: readonly Recipient[];
  readonly results: Results;
  /** RFC 8689 REQUIRETLS was given on MAIL FROM. */
  readonly requireTls: boolean;
  /** BODY=7BIT or 8BITMIME (RFC 6152). */
  readonly bodyType: string;
  /** SMTPUTF8 was given (RFC 6531). */
  readonly smtpUtf8: boolean;
  /** DSN RET and ENVID (RFC 3461). */
  readonly dsn: { readonly ret: string | null; readonly envid: string | null } | undefined;
  /** Set once a data hook quarantined the message. */
  readonly quarantined: { readonly reason: string } | undefined;
  /**
   * Moves an accepted recipient to another route before `queue` runs; queue groups are formed
   * after every data hook. Throws once queueing has begun.
   */
  reroute(recipient: Recipient, route: string): void;
  /**
   * Adds a recipient (milter SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR with ESMTP parameters). Without a
   * route, the rcptTo hooks decide as for an RCPT TO command (an alias expands, nobody claiming
   * it refuses it). Duplicates collapse.
   */
  addRecipient(
    address: string,
    options?: { route?: string; parameters?: EsmtpParameters },
  ): Promise<AddRecipientOutcome>;
  /** Replaces the envelope sender (milter SMFIR_CHGFROM), e.g. for SRS; until queueing begins. */
  changeSender(address: string, parameters?: EsmtpParameters): void;
  /** Removes every recipient with this address (SMFIR_DELRCPT). Returns how many. */
  removeRecipient(address: string): number;
  /**
   * Holds the message: every recipient's group is stored under the server's quarantine route
   * (`quarantineRoute`, default "quarantine") instead of its own. A later plugin may still refuse it.
   */
  quarantine(reason: string): void;
}

/** Recipients of one transaction that share a route; `queue` runs once per group. */
export interface RouteGroup {
  readonly route: string;
  readonly recipients: readonly Recipient[];
}

export interface Credentials {
  readonly method: string;
  readonly username: string;
  readonly password: string;
}
