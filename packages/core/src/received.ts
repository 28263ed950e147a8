// The Received trace field core writes for every message (RFC 5321 §4.4).
import type { Session, Transaction } from "./session.ts";

function protocol(session: Session): string {
  // RFC 3848 protocol names.
  if (session.greeting === "HELO") return "SMTP";
  return `ESMTP${session.tls ? "S" : ""}${session.user ? "A" : ""}`;
}

/** The date part, formatted once per second (it is the same for every message of that second). */
let dateSecond = Number.NaN;
let dateText = "";
function dateOf(now: Date): string {
  const second = Math.floor(now.getTime() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = now.toUTCString().replace("GMT", "+0000");
  }
  return dateText;
}

export function receivedHeader(hostname: string, transaction: Transaction, now = new Date()): string {
  const session = transaction.session;
  const from = session.heloName ?? "unknown";
  const address = session.remoteAddress.includes(":") ? `IPv6:${session.remoteAddress}` : session.remoteAddress;
  const reverse = session.clientHostname ?? "unknown";
  const tls = session.tls ? `\r\n\t(using ${session.tls.protocol} with cipher ${session.tls.cipher})` : "";
  // Naming the recipient leaks Bcc when there are several; only one is named.
  const only = transaction.recipients.length === 1 ? `\r\n\tfor <${transaction.recipients[0]!.address}>` : "";
  return `from ${from} (${reverse} [${address}])${tls}\r\n\tby ${hostname} (Postern) with ${protocol(session)} id ${transaction.id}${only};\r\n\t${dateOf(now)}`;
}
