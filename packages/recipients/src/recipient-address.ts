// Splits a RCPT TO address into the parts the policy looks at. smtp-server has already refused
// most syntax errors with 501 before any hook runs; what reaches us can still be an address
// literal, a bare "postmaster", or (with lenient parsing or another front end) something odd.
import { normalizeDomain } from "./domain-name.ts";

export type ParsedRecipient =
  /** RFC 5321 §4.1.1.3: the domain-less "postmaster" every SMTP server must accept. */
  | { kind: "postmaster" }
  /** user@[192.0.2.1] or user@[IPv6:…] (RFC 5321 §4.1.3). */
  | { kind: "address-literal" }
  | { kind: "malformed" }
  /** `localPart` is lower-cased: Postern treats local parts case-insensitively, like most MTAs. */
  | { kind: "mailbox"; localPart: string; domain: string };

export function parseRecipient(address: string): ParsedRecipient {
  if (address.toLowerCase() === "postmaster") return { kind: "postmaster" };
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return { kind: "malformed" };
  const domainPart = address.slice(at + 1);
  if (domainPart.startsWith("[") && domainPart.endsWith("]")) return { kind: "address-literal" };
  const domain = normalizeDomain(domainPart);
  if (domain === undefined) return { kind: "malformed" };
  return { kind: "mailbox", localPart: address.slice(0, at).toLowerCase(), domain };
}

/**
 * Whether a local part can name a mailbox here: a dot-atom (RFC 5322 §3.2.3) without "/", plus
 * UTF-8 (RFC 6531). Quoted strings and path separators are valid SMTP but never name a Postern
 * mailbox, and refusing them here keeps them away from storage plugins that build paths.
 */
export function isMailboxLocalPart(localPart: string): boolean {
  return /^[\p{L}\p{N}!#$%&'*+=?^_`{|}~-]+(?:\.[\p{L}\p{N}!#$%&'*+=?^_`{|}~-]+)*$/u.test(localPart);
}
