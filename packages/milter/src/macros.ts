// The macros sent before each command, named and filled as Sendmail and Postfix do, so milters
// configured for them find what they look for ({daemon_name} to pick signing or verifying,
// {auth_authen} for authenticated senders, `i` for the queue ID in their logs). A milter that sent
// a symbol list gets only the macros it listed (milter-session.ts filters).
import { isIPv4 } from "node:net";
import type { Session, Transaction } from "@postern/core";

export type Macros = ReadonlyMap<string, string>;

function defined(entries: [string, string | undefined][]): Macros {
  return new Map(entries.filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ""));
}

/** The client's IP without an IPv4-mapped prefix ("::ffff:192.0.2.1" → "192.0.2.1"). */
export function clientIp(remoteAddress: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress);
  return mapped && isIPv4(mapped[1]!) ? mapped[1]! : remoteAddress;
}

function domainOf(address: string): string | undefined {
  const at = address.lastIndexOf("@");
  return at === -1 ? undefined : address.slice(at + 1);
}

export function connectMacros(session: Session, hostname: string): Macros {
  const ip = clientIp(session.remoteAddress);
  return defined([
    ["j", hostname],
    ["{daemon_name}", session.listener.name],
    ["{daemon_addr}", clientIp(session.localAddress)],
    ["{daemon_port}", String(session.localPort)],
    ["{if_addr}", clientIp(session.localAddress)],
    ["v", "Postern"],
    ["_", `${session.clientHostname ?? "unknown"} [${ip}]`],
    ["{client_addr}", ip],
    ["{client_port}", String(session.remotePort)],
    ["{client_name}", session.clientHostname ?? "unknown"],
    ["{client_ptr}", session.clientHostname ?? "unknown"],
  ]);
}

export function heloMacros(session: Session): Macros {
  const tls = session.tls;
  return defined([
    ["{tls_version}", tls?.protocol],
    ["{cipher}", tls?.cipher],
    ["{cert_subject}", tls?.clientCertificate?.subject],
    ["{cert_issuer}", tls?.clientCertificate?.issuer],
  ]);
}

export function mailMacros(transaction: Transaction): Macros {
  const session = transaction.session;
  const address = transaction.mailFrom.address;
  return defined([
    ["i", transaction.id],
    ["{auth_authen}", session.user],
    ["{mail_addr}", address],
    ["{mail_host}", domainOf(address)],
    ["{mail_mailer}", "smtp"],
  ]);
}

export function rcptMacros(transaction: Transaction, address: string): Macros {
  return defined([
    ["i", transaction.id],
    ["{rcpt_addr}", address],
    ["{rcpt_host}", domainOf(address)],
    ["{rcpt_mailer}", "smtp"],
  ]);
}

export function messageMacros(transaction: Transaction): Macros {
  return defined([["i", transaction.id]]);
}
