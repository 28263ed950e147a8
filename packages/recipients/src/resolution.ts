// What every piece of the directory answers for one address. A resolver is pure in the sense that
// matters here: it maps an address to one of four answers and never throws, never accepts or
// refuses by itself; the expansion (expansion.ts) and the plugin turn answers into SMTP replies.
import { addressKey, parseAddress } from "@postern/core";
import type { DirectoryError } from "./directory-error.ts";

/**
 * An address as the resolvers get it, in core's forms (parseAddress, addressKey): the key every
 * table and cache uses, its two halves, and the local part as written for what leaves this server.
 */
export interface LookupAddress {
  /** `localpart@domain` as core's addressKey writes it (local part lower-cased, domain normalized). */
  readonly address: string;
  /** Lower-cased. */
  readonly localPart: string;
  /** ASCII (punycode), lower-case, no trailing dot. */
  readonly domain: string;
  /**
   * The local part as written (case kept) at the normalized domain: what a remote address is
   * forwarded to and what an SRS address is reversed from (a local part's case is the remote
   * system's business, RFC 5321 §2.4).
   */
  readonly original: string;
}

/** `local@domain` with a domain name; undefined for anything else (address literals, the bare postmaster). */
export function lookupAddress(text: string): LookupAddress | undefined {
  const parsed = parseAddress(text);
  if (parsed.kind !== "mailbox") return undefined;
  const original = `${parsed.localPart}@${parsed.domain}`;
  const address = addressKey(original);
  return { address, localPart: address.slice(0, address.lastIndexOf("@")), domain: parsed.domain, original };
}

export type Resolution =
  /** A local mailbox; `detail` when it was found by the address without its subaddress. */
  | { readonly kind: "mailbox"; readonly mailbox: string; readonly detail?: string }
  /** Further addresses, local or not; a bare name (`bob`) is in the domain of the address resolved. */
  | { readonly kind: "expand"; readonly addresses: readonly string[] }
  /**
   * Not known here: the next resolver is asked, and after the last the recipient is unknown.
   * `final` stops the chain (a forged SRS address must not reach a catch-all).
   */
  | { readonly kind: "unknown"; readonly reason?: string; readonly final?: boolean }
  /** The answer could not be had (a directory is down): answer 4xx, never guess. */
  | { readonly kind: "tempfail"; readonly cause: DirectoryError };

export interface Resolver {
  /** For logs and `postern address test`: `aliases /etc/aliases`, `ldap ldap://…`. */
  readonly name: string;
  resolve(address: LookupAddress): Promise<Resolution>;
  close?(): Promise<void>;
}

export const unknown: Resolution = { kind: "unknown" };
