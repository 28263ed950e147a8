// The default mailbox key of a recipient: the address with its local part lower-cased and its
// domain in lower-case ASCII (punycode), so "Alice@EXAMPLE.com" and "alice@example.com" — and the
// Unicode and ASCII spellings of an IDN — share one mailbox. Same rule as @postern/store-maildir.
import { domainToASCII } from "node:url";

export function defaultMailbox(address: string): string {
  const at = address.lastIndexOf("@");
  if (at === -1) return address.toLowerCase();
  const domain = address.slice(at + 1).replace(/\.$/, "");
  const ascii = domainToASCII(domain);
  return `${address.slice(0, at).toLowerCase()}@${ascii === "" ? domain.toLowerCase() : ascii}`;
}
