// Where a recipient's Maildir is: the layout with {domain}, {user} and {address} filled in, under
// root. Values that could escape their path segment are refused, never rewritten: escaping
// "a/b" to "a_b" would deliver a stranger's mail into the mailbox of a real user "a_b".
import { resolve, sep } from "node:path";
import { normalizeDomain, parseAddress } from "@postern/core";

export type MailboxPath = { ok: true; path: string } | { ok: false; reason: string };

/** NAME_MAX on Linux and most file systems, in bytes. */
const maxSegmentBytes = 255;

function segmentProblem(value: string): string | undefined {
  if (value === "") return "it is empty";
  if (value.startsWith(".")) return "it starts with a dot"; // also "." and ".."; hidden files in Maildir are Maildir++ folders
  if (/[/\\]/.test(value)) return "it contains a path separator";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
  if (/[\u0000-\u001f\u007f]/.test(value)) return "it contains a control character";
  if (Buffer.byteLength(value) > maxSegmentBytes) return "it is too long for a file name";
  return undefined;
}

/**
 * The Maildir path of `address`. A domain-less address (the bare "postmaster" of RFC 5321
 * §4.1.1.3) belongs to `defaultDomain`, the server's host name.
 */
export function mailboxPath(root: string, layout: string, address: string, defaultDomain: string): MailboxPath {
  // Core's address rules: local part lower-cased, domain in lower-case ASCII (punycode), so
  // Unicode and ASCII spellings of an IDN share one mailbox; an address literal has no domain name.
  const parsed = parseAddress(address);
  const user =
    parsed.kind === "mailbox" || parsed.kind === "address-literal" ? parsed.localPart.toLowerCase() : "postmaster";
  const domain =
    parsed.kind === "mailbox"
      ? parsed.domain
      : parsed.kind === "postmaster"
        ? (normalizeDomain(defaultDomain) ?? "")
        : "";
  const values: Record<string, string> = { user, domain, address: `${user}@${domain}` };
  for (const [name, value] of Object.entries(values)) {
    const problem =
      parsed.kind === "malformed"
        ? "it is not an address"
        : name === "domain" && domain === ""
          ? "it is not a domain name"
          : segmentProblem(value);
    if (problem) return { ok: false, reason: `the ${name} of <${address}> cannot name a mailbox: ${problem}` };
  }
  const relative = layout.replace(/\{(domain|user|address)\}/g, (_, name: string) => values[name]!);
  const path = resolve(root, relative);
  // Checked again after substitution, whatever the layout and values were.
  if (!path.startsWith(root + sep)) return { ok: false, reason: `<${address}> resolves outside the Maildir root` };
  return { ok: true, path };
}
