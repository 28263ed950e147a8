// What a result means at RCPT TO. Listed clients get the configured action; failed lookups block
// mail only when the operator chose onDnsError: "defer" (a broken list must not stop mail unless
// asked to). Authenticated sessions and postmaster-style recipients are never refused.
import { defer, reject, type Verdict } from "@postern/core";
import type { ResolvedDnsblOptions } from "./options.ts";
import type { DnsblResult } from "./result.ts";

export interface RecipientContext {
  readonly recipient: string;
  readonly authenticated: boolean;
}

function localPart(address: string): string {
  const at = address.lastIndexOf("@");
  return (at === -1 ? address : address.slice(0, at)).toLowerCase();
}

export function verdictFor(
  options: ResolvedDnsblOptions,
  result: DnsblResult,
  context: RecipientContext,
): Verdict | undefined {
  if (options.skipAuthenticated && context.authenticated) return undefined;
  if (options.exemptRecipients.some((exempt) => exempt.toLowerCase() === localPart(context.recipient))) {
    return undefined;
  }
  if (result.status === "listed" && options.action !== "accept") {
    // Name the lists that count (heaviest first) and the first one's reason: that is what the
    // sender's postmaster needs to get delisted.
    const listings = result.zones
      .filter((zone) => zone.status === "listed" && zone.weight > 0)
      .sort((a, b) => b.weight - a.weight);
    const reason = listings.find((zone) => zone.reason)?.reason;
    const text = `Client ${result.ip} is listed by ${listings.map((zone) => zone.zone).join(", ")}${reason ? `: ${reason}` : ""}`;
    return options.action === "reject" ? reject("5.7.1", text) : defer("4.7.1", text);
  }
  if (result.status === "error" && options.onDnsError === "defer") {
    const failed = result.zones.filter((zone) => zone.status === "error").map((zone) => zone.zone);
    // 4.4.3: a directory (DNS) server failure (RFC 3463).
    return defer("4.4.3", `Blocklist lookup failed (${failed.join(", ")}), try again later`);
  }
  return undefined;
}
