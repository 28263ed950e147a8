// What rspamd is told about the message besides its bytes: the envelope and the session, in the
// request headers of its protocol (IP, Helo, Hostname, From, Rcpt, Queue-Id, User, MTA-Name,
// TLS-Version, TLS-Cipher, TLS-Cert-Issuer, Settings-ID). rspamd's rules read these instead of
// guessing from Received fields.
import { parseIpAddress, type Transaction } from "@postern/core";

export interface RequestFacts {
  /** Our hostname (rspamd's MTA-Name: the authserv-id of the Authentication-Results it writes). */
  readonly hostname: string;
  readonly settingsId: string | undefined;
}

/**
 * Header values go out as bytes: a UTF-8 text is written byte for byte (Node sends header values as
 * latin1, one char per byte), and anything that could end a header line is dropped — HELO names
 * and addresses come from the client.
 */
export function headerValue(text: string): string {
  return Buffer.from(text.replace(/[\0\r\n]+/g, " "), "utf8").toString("latin1");
}

/** The request headers for one message. */
export function requestHeaders(transaction: Transaction, facts: RequestFacts): Record<string, string | string[]> {
  const session = transaction.session;
  const headers: Record<string, string | string[]> = {};
  const set = (name: string, value: string | undefined) => {
    if (value !== undefined && value !== "") headers[name] = headerValue(value);
  };
  // A client on a dual-stack listener shows as ::ffff:192.0.2.1; rspamd should see 192.0.2.1.
  set("IP", parseIpAddress(session.remoteAddress)?.toString() ?? session.remoteAddress);
  set("Helo", session.heloName);
  set("Hostname", session.clientHostname);
  set("From", `<${transaction.mailFrom.address}>`);
  // The recipients as the client gave them (RCPT TO), once each: what rspamd compares with To/Cc.
  const recipients = [...new Set(transaction.recipients.map((recipient) => recipient.original))];
  if (recipients.length > 0) headers.Rcpt = recipients.map((address) => headerValue(`<${address}>`));
  set("Queue-Id", transaction.id);
  set("User", session.user);
  set("MTA-Name", facts.hostname);
  set("TLS-Version", session.tls?.protocol);
  set("TLS-Cipher", session.tls?.cipher);
  set("TLS-Cert-Issuer", session.tls?.clientCertificate?.issuer);
  set("Settings-ID", facts.settingsId);
  return headers;
}
