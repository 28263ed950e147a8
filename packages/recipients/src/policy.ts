// The recipient policy as a pure function: what to do with one RCPT TO, given the options and the
// facts of the session. index.ts turns the decision into a verdict.
import type { ResolvedRecipientsOptions } from "./options.ts";
import { isMailboxLocalPart, parseRecipient } from "./recipient-address.ts";

export type RecipientDecision = { readonly address: string } & (
  | {
      readonly outcome: "local";
      /** The normalized mailbox, "user@domain" (lower-case, ASCII domain), or "postmaster". */
      readonly mailbox: string;
      /** What made it local: a listed mailbox, a "*@domain" catch-all, any user of the domain, or postmaster. */
      readonly match: "mailbox" | "catch-all" | "domain" | "postmaster";
    }
  | { readonly outcome: "relay"; readonly reason: "authenticated" | "network" }
  | { readonly outcome: "refused"; readonly reason: "unknown-user" | "address-literal" | "malformed" }
  /** Not local and this client may not relay: left to other plugins, then core's 550 5.7.1. */
  | { readonly outcome: "no-route" }
);

export interface ClientFacts {
  remoteAddress: string;
  user: string | undefined;
}

export function decideRecipient(
  options: ResolvedRecipientsOptions,
  isTrustedNetwork: (address: string) => boolean,
  address: string,
  client: ClientFacts,
): RecipientDecision {
  const parsed = parseRecipient(address);
  if (parsed.kind === "postmaster") return { address, outcome: "local", mailbox: "postmaster", match: "postmaster" };
  if (parsed.kind !== "mailbox") return { address, outcome: "refused", reason: parsed.kind };

  const { localPart, domain } = parsed;
  if (options.domains.has(domain)) {
    const mailbox = `${localPart}@${domain}`;
    // RFC 5321 §4.5.1: postmaster of every domain we accept mail for, whatever the address table says.
    if (localPart === "postmaster") return { address, outcome: "local", mailbox, match: "postmaster" };
    if (!isMailboxLocalPart(localPart)) return { address, outcome: "refused", reason: "unknown-user" };
    if (options.mailboxes === undefined) return { address, outcome: "local", mailbox, match: "domain" };
    if (options.mailboxes.has(mailbox)) return { address, outcome: "local", mailbox, match: "mailbox" };
    if (options.mailboxes.has(`*@${domain}`)) return { address, outcome: "local", mailbox, match: "catch-all" };
    // Refused at RCPT, not accepted and bounced later: a later bounce would go to a sender
    // address that is usually forged (backscatter).
    return { address, outcome: "refused", reason: "unknown-user" };
  }

  if (client.user !== undefined && options.relay.authenticated) {
    return { address, outcome: "relay", reason: "authenticated" };
  }
  if (isTrustedNetwork(client.remoteAddress)) return { address, outcome: "relay", reason: "network" };
  return { address, outcome: "no-route" };
}
