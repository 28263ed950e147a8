// What every piece of the directory answers for one address. A resolver is pure in the sense that
// matters here: it maps an address to one of four answers and never throws, never accepts or
// refuses by itself; the expansion (expansion.ts) and the plugin turn answers into SMTP replies.
import type { DirectoryError } from "./directory-error.ts";
import type { MailAddress } from "./mail-address.ts";

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
  resolve(address: MailAddress): Promise<Resolution>;
  close?(): Promise<void>;
}

export const unknown: Resolution = { kind: "unknown" };
