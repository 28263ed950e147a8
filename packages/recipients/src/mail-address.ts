// The one form every directory module compares addresses in: a lower-case local part (quotes
// removed where they add nothing) and a lower-case ASCII domain. Core's shared address primitives
// (issue 13) will replace this module; until then the directory keeps its own, in one place.
import { normalizeDomain } from "./domain-name.ts";

export interface MailAddress {
  /** `localPart@domain`, the key every table and cache uses. */
  readonly address: string;
  readonly localPart: string;
  /** ASCII (punycode), lower-case, no trailing dot. */
  readonly domain: string;
  /**
   * The local part as written (case kept) at the normalized domain: what a remote address is forwarded to and what an SRS
   * address is reversed from (a local part's case is the remote system's business, RFC 5321 §2.4).
   */
  readonly original: string;
}

const dotAtom = /^[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+(?:\.[\p{L}\p{N}!#$%&'*+/=?^_`{|}~-]+)*$/u;

/**
 * RFC 5321 §2.4 lets a server treat local parts case-insensitively, and Postern does (as most MTAs
 * do). `"alice"` and `alice` name the same mailbox (RFC 5322 §3.4.1), so quotes that protect
 * nothing are dropped; a quoted local part that needs them keeps them, with minimal escaping.
 */
export function normalizeLocalPart(localPart: string): string | undefined {
  let bare = localPart;
  if (localPart.length >= 2 && localPart.startsWith('"') && localPart.endsWith('"')) {
    bare = localPart.slice(1, -1).replace(/\\(.)/gu, "$1");
    if (!dotAtom.test(bare)) return `"${bare.replace(/(["\\])/g, "\\$1").toLowerCase()}"`;
  }
  if (!dotAtom.test(bare)) return undefined;
  return bare.toLowerCase();
}

/** Parses `local@domain`; undefined for anything else (address literals included). */
export function parseMailAddress(text: string): MailAddress | undefined {
  const at = text.lastIndexOf("@");
  if (at <= 0 || at === text.length - 1) return undefined;
  const localPart = normalizeLocalPart(text.slice(0, at));
  const domain = normalizeDomain(text.slice(at + 1));
  if (localPart === undefined || domain === undefined) return undefined;
  return { address: `${localPart}@${domain}`, localPart, domain, original: `${text.slice(0, at)}@${domain}` };
}

/** An address from a local part as written and a normalized domain. */
export function mailAddress(localPart: string, domain: string): MailAddress | undefined {
  const normalized = normalizeLocalPart(localPart);
  if (normalized === undefined) return undefined;
  return { address: `${normalized}@${domain}`, localPart: normalized, domain, original: `${localPart}@${domain}` };
}
