// The default mailbox key of a recipient: core's address key — the local part lower-cased and the
// domain in lower-case ASCII (punycode), so "Alice@EXAMPLE.com" and "alice@example.com", and the
// Unicode and ASCII spellings of an IDN, share one mailbox (the same rule as @postern/store-maildir).
import { addressKey } from "@postern/core";

export function defaultMailbox(address: string): string {
  return addressKey(address);
}
