// Mail addresses in the one form every plugin compares them in. Domains: lower-case ASCII
// (IDNA/punycode), no trailing dot — smtp-server hands over Unicode domains while operators write
// either form, so both sides go through the same conversion. Local parts: compared lower-cased
// (Postern treats them case-insensitively, like most MTAs; RFC 5321 §2.4 allows it for our own
// domains) and kept as given for delivery elsewhere.
import { isIP } from "node:net";
import { domainToASCII } from "node:url";

const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A name already in the form normalizeDomain() returns: lower-case LDH labels, the last one
 * starting with a letter (so never an IP address), no A-label to check. Most names MAIL FROM and
 * RCPT TO carry are; they skip the IDNA conversion (5–9 µs a message on the discard path).
 */
const plainName = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The comparable form of a domain name, or undefined when it is not a host name. */
export function normalizeDomain(name: string): string | undefined {
  if (name.length <= 253 && plainName.test(name) && !name.includes("xn--")) return name;
  const trimmed = name.trim().replace(/\.$/, "");
  if (trimmed === "" || isIP(trimmed) !== 0) return undefined;
  const ascii = domainToASCII(trimmed);
  if (ascii === "" || ascii.length > 253) return undefined;
  const labels = ascii.split(".");
  if (!labels.every((part) => label.test(part))) return undefined;
  // An all-numeric last label would make "10.0.0.300" a "domain".
  if (/^\d+$/.test(labels.at(-1)!)) return undefined;
  return ascii;
}

export type ParsedAddress =
  /** RFC 5321 §4.1.1.3: the domain-less "postmaster" every SMTP server must accept. */
  | { readonly kind: "postmaster" }
  /** user@[192.0.2.1] or user@[IPv6:…] (RFC 5321 §4.1.3). */
  | { readonly kind: "address-literal"; readonly localPart: string; readonly literal: string }
  | { readonly kind: "malformed" }
  /** `localPart` as given; `domain` normalized. */
  | { readonly kind: "mailbox"; readonly localPart: string; readonly domain: string };

/** Splits an envelope address (without angle brackets) at its last "@". */
export function parseAddress(address: string): ParsedAddress {
  if (address.toLowerCase() === "postmaster") return { kind: "postmaster" };
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return { kind: "malformed" };
  const localPart = address.slice(0, at);
  const domainPart = address.slice(at + 1);
  if (domainPart.startsWith("[") && domainPart.endsWith("]")) {
    return { kind: "address-literal", localPart, literal: domainPart.slice(1, -1) };
  }
  const domain = normalizeDomain(domainPart);
  if (domain === undefined) return { kind: "malformed" };
  return { kind: "mailbox", localPart, domain };
}

/** The domain of an address, normalized; undefined for the null sender, postmaster and literals. */
export function domainOf(address: string): string | undefined {
  const parsed = parseAddress(address);
  return parsed.kind === "mailbox" ? parsed.domain : undefined;
}

/**
 * The key an address is compared and stored under: local part lower-cased, domain normalized
 * ("Alice@EXAMPLE.com" and "alice@example.com", and the Unicode and ASCII spellings of an IDN, are
 * one mailbox). A domain-less address gets `defaultDomain` when given; anything that does not
 * parse is only lower-cased.
 */
export function addressKey(address: string, defaultDomain?: string): string {
  // Printable ASCII with a domain and no trailing dot comes out lower-cased whichever way it
  // parses (IDNA changes nothing in ASCII): skip the parse, this runs for every recipient.
  if (printableAscii.test(address) && address.includes("@") && !address.endsWith(".")) return address.toLowerCase();
  const parsed = parseAddress(address);
  switch (parsed.kind) {
    case "mailbox":
      return `${parsed.localPart.toLowerCase()}@${parsed.domain}`;
    case "postmaster": {
      const domain = defaultDomain === undefined ? undefined : normalizeDomain(defaultDomain);
      return domain ? `postmaster@${domain}` : "postmaster";
    }
    case "address-literal":
      return `${parsed.localPart.toLowerCase()}@[${parsed.literal.toLowerCase()}]`;
    case "malformed":
      return address.toLowerCase();
  }
}

const printableAscii = /^[\x21-\x7e]+$/;

export interface Subaddress {
  /** The local part without the detail: "alice" of "alice+news". */
  readonly base: string;
  /** The detail, or undefined when there is none: "news" of "alice+news". */
  readonly detail: string | undefined;
}

/**
 * Splits a local part at the first of the delimiter characters (like Postfix's
 * recipient_delimiter: "+" or several, "+-"). A local part that starts with a delimiter keeps it:
 * "+x" is a name, not an empty base with a detail.
 */
export function splitSubaddress(localPart: string, delimiters: string): Subaddress {
  if (delimiters === "") return { base: localPart, detail: undefined };
  for (let index = 1; index < localPart.length; index++) {
    if (delimiters.includes(localPart[index]!)) {
      return { base: localPart.slice(0, index), detail: localPart.slice(index + 1) };
    }
  }
  return { base: localPart, detail: undefined };
}

/**
 * Whether a local part can name a mailbox here: a dot-atom (RFC 5322 §3.2.3) without "/", plus
 * UTF-8 (RFC 6531). Quoted strings and path separators are valid SMTP but never name a Postern
 * mailbox, and refusing them keeps them away from storage plugins that build paths.
 */
export function isMailboxLocalPart(localPart: string): boolean {
  return /^[\p{L}\p{N}!#$%&'*+=?^_`{|}~-]+(?:\.[\p{L}\p{N}!#$%&'*+=?^_`{|}~-]+)*$/u.test(localPart);
}
