// Who is never greylisted: client networks, sender domains (a domain and its subdomains) and client
// host names — the client's reverse DNS name, forward-confirmed here (its A/AAAA records must hold
// the client's address), since anyone who controls a PTR record can claim to be mail.example.com.
import { domainOf, type IpAddress, type IpNetworkList, normalizeDomain, parseIpAddress } from "@postern/core";

export type AllowReason = "network" | "senderDomain" | "clientName";

/** "*.outbound.example.com" → a case-insensitive, anchored expression; * is any run of characters. */
export function clientNamePattern(glob: string): RegExp {
  const escaped = glob
    .trim()
    .replace(/\.$/, "")
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${escaped}$`, "i");
}

export interface Allowlist {
  readonly networks: IpNetworkList;
  /** Normalized domains. */
  readonly senderDomains: readonly string[];
  readonly clientNames: readonly RegExp[];
}

export function senderDomainAllowed(allowlist: Allowlist, sender: string): boolean {
  const domain = domainOf(sender);
  if (domain === undefined) return false;
  return allowlist.senderDomains.some((allowed) => domain === allowed || domain.endsWith(`.${allowed}`));
}

/** Whether the client's reverse name matches a pattern and resolves back to the client's address. */
export async function clientNameAllowed(
  allowlist: Allowlist,
  clientHostname: string | undefined,
  address: IpAddress,
  resolve: (name: string, rrtype: "A" | "AAAA") => Promise<unknown>,
): Promise<boolean> {
  if (clientHostname === undefined || allowlist.clientNames.length === 0) return false;
  const name = normalizeDomain(clientHostname);
  if (name === undefined || !allowlist.clientNames.some((pattern) => pattern.test(name))) return false;
  const rrtype = address.kind() === "ipv4" ? "A" : "AAAA";
  const records = await resolve(name, rrtype).catch(() => []);
  if (!Array.isArray(records)) return false;
  const wanted = address.toNormalizedString();
  return records.some(
    (record) => typeof record === "string" && parseIpAddress(record)?.toNormalizedString() === wanted,
  );
}
