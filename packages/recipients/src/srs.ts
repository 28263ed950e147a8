// The Sender Rewriting Scheme (Shevek's 2004 paper; the format of libsrs2 and postsrsd 1.x), so a
// forwarded message's envelope sender is in our domain (SPF passes at the next hop) and a bounce
// to it can be verified and sent back to the original sender:
//
//   SRS0=HHHH=TT=orig.example=alice@forwarder.example      we forward alice@orig.example
//   SRS1=HHHH=first.example==HHHH=TT=orig.example=alice@…  we forward a message another forwarder
//                                                          already rewrote: only its host is kept
//
// HHHH: the first characters of base64(HMAC-SHA1(secret, lower-cased fields joined)); TT: the day
// number modulo 1024 in base32. Hashes compare case-insensitively, since some MTAs lower-case
// local parts. Key rotation: the first secret signs, every listed secret verifies.
// Hand-written because npm's SRS packages (srs.js, sender-rewriting-scheme) hash with hex digits
// instead of base64, offer one secret only, and so cannot read what postsrsd writes.
import { createHmac, timingSafeEqual } from "node:crypto";

export type SrsSeparator = "=" | "+" | "-";

export interface SrsOptions {
  /** The domain SRS addresses are written in: ours, with an SPF record that covers our senders. */
  domain: string;
  /** Secrets, newest first: the first signs, every one verifies (rotate by prepending). */
  secrets: readonly string[];
  /** The character after SRS0/SRS1 (default "=", as postsrsd). */
  separator?: SrsSeparator;
  /** Characters of the hash written (default 4, as postsrsd; at most 27). */
  hashLength?: number;
  /** Fewest hash characters accepted (default `hashLength`). */
  hashMinLength?: number;
  /** Days a rewritten address stays valid for bounces (default 21, as postsrsd). */
  maxAgeDays?: number;
  /** The clock, in milliseconds (tests move it). */
  now?: () => number;
}

export type SrsReversal =
  | { readonly kind: "reversed"; readonly address: string }
  | { readonly kind: "not-srs" }
  | { readonly kind: "invalid"; readonly reason: "syntax" | "hash" | "expired" };

export interface Srs {
  readonly domain: string;
  /** The envelope sender to use when forwarding mail from `sender`; "" and our own stay as they are. */
  forward(sender: string): string;
  /** The address a bounce to `address` goes to, if it is a valid SRS address of ours. */
  reverse(address: string): SrsReversal;
}

const timeChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const dayMs = 86_400_000;
const timeSlots = 1024; // two base32 characters

/** Whether a local part is SRS-shaped (SRS0/SRS1 and a separator), whatever its validity. */
export function isSrsLocalPart(localPart: string): boolean {
  return /^srs[01][=+-]/i.test(localPart);
}

/** ASCII-only lower-casing, as libsrs2 does (C `tolower`): a UTF-8 local part hashes the same. */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

function splitAddress(address: string): { local: string; host: string } | undefined {
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return undefined;
  return { local: address.slice(0, at), host: address.slice(at + 1) };
}

export function createSrs(options: SrsOptions): Srs {
  const separator = options.separator ?? "=";
  const hashLength = options.hashLength ?? 4;
  const hashMinLength = options.hashMinLength ?? hashLength;
  const maxAgeDays = options.maxAgeDays ?? 21;
  const now = options.now ?? Date.now;
  if (options.secrets.length === 0 || options.secrets.some((secret) => secret === "")) {
    throw new TypeError("SRS needs at least one non-empty secret");
  }
  if (hashLength < 1 || hashLength > 27 || hashMinLength < 1 || hashMinLength > hashLength) {
    throw new TypeError("SRS hash lengths must be 1 ≤ hashMinLength ≤ hashLength ≤ 27");
  }
  const domain = options.domain;
  const secrets = options.secrets.map((secret) => Buffer.from(secret, "utf8"));

  const hash = (secret: Buffer, ...fields: string[]): string => {
    const hmac = createHmac("sha1", secret);
    for (const field of fields) hmac.update(asciiLower(field), "utf8");
    return hmac.digest("base64").slice(0, hashLength);
  };

  const verify = (given: string, ...fields: string[]): boolean => {
    if (given.length < hashMinLength) return false;
    const wanted = asciiLower(given.slice(0, hashLength));
    const compare = Buffer.from(wanted);
    let valid = false;
    for (const secret of secrets) {
      const expected = Buffer.from(asciiLower(hash(secret, ...fields).slice(0, wanted.length)));
      // Every secret is tried (no early exit): the time taken says nothing about which matched.
      if (expected.length === compare.length && timingSafeEqual(expected, compare)) valid = true;
    }
    return valid;
  };

  const today = () => Math.floor(now() / dayMs);
  const stamp = () => {
    const day = today();
    return timeChars[(day >> 5) & 31]! + timeChars[day & 31]!;
  };
  const fresh = (text: string): boolean => {
    if (text.length !== 2) return false;
    let then = 0;
    for (const char of text.toUpperCase()) {
      const value = timeChars.indexOf(char);
      if (value < 0) return false;
      then = (then << 5) | value;
    }
    let current = today() % timeSlots;
    while (current < then) current += timeSlots;
    return current <= then + maxAgeDays;
  };

  return {
    domain,
    forward(sender) {
      const parts = splitAddress(sender);
      // The null sender has nobody to bounce to; a sender already in our domain passes SPF as is.
      if (parts === undefined || parts.host.toLowerCase() === domain.toLowerCase()) return sender;
      const { local, host } = parts;
      if (/^srs1[=+-]/i.test(local)) {
        // Already forwarded twice or more: keep the first forwarder's host and what it wrote.
        const match = /^srs1[=+-]([^=]*)=([^=]+)=(.+)$/is.exec(local);
        if (match) {
          const [, , firstHost, rest] = match as unknown as [string, string, string, string];
          return `SRS1${separator}${hash(secrets[0]!, firstHost, rest)}=${firstHost}=${rest}@${domain}`;
        }
      }
      if (/^srs0[=+-]/i.test(local)) {
        // Forwarding another forwarder's SRS0: point bounces back at that forwarder (SRS1).
        const rest = local.slice(4);
        return `SRS1${separator}${hash(secrets[0]!, host, rest)}=${host}=${rest}@${domain}`;
      }
      const time = stamp();
      return `SRS0${separator}${hash(secrets[0]!, time, host, local)}=${time}=${host}=${local}@${domain}`;
    },
    reverse(address) {
      const parts = splitAddress(address);
      const local = parts?.local ?? address;
      if (!isSrsLocalPart(local)) return { kind: "not-srs" };
      if (/^srs0/i.test(local)) {
        const match = /^srs0[=+-]([^=]+)=([^=]+)=([^=]+)=(.+)$/is.exec(local);
        if (!match) return { kind: "invalid", reason: "syntax" };
        const [, given, time, host, user] = match as unknown as [string, string, string, string, string];
        if (!verify(given, time, host, user)) return { kind: "invalid", reason: "hash" };
        if (!fresh(time)) return { kind: "invalid", reason: "expired" };
        return { kind: "reversed", address: `${user}@${host}` };
      }
      const match = /^srs1[=+-]([^=]+)=([^=]+)=(.+)$/is.exec(local);
      if (!match) return { kind: "invalid", reason: "syntax" };
      const [, given, host, rest] = match as unknown as [string, string, string, string];
      if (!verify(given, host, rest)) return { kind: "invalid", reason: "hash" };
      return { kind: "reversed", address: `SRS0${rest}@${host}` };
    },
  };
}
