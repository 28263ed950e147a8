// The recipient policy: what one RCPT TO stands for, given the directory and the facts of the
// session. index.ts turns the decision into a verdict.
import { type IpNetworkList, isMailboxLocalPart, parseAddress } from "@postern/core";
import type { Directory } from "./directory.ts";
import type { DirectoryError } from "./directory-error.ts";
import type { DroppedTarget, Target } from "./expansion.ts";
import { type RefusalReason, refusalReason } from "./expansion-reply.ts";

export type RecipientDecision = { readonly address: string } & (
  | {
      /** A local domain's address (or the bare postmaster): the mailboxes and forwards it stands for. */
      readonly outcome: "local";
      readonly targets: readonly Target[];
      /** List members that were dropped (unknown, looping, malformed). */
      readonly dropped: readonly DroppedTarget[];
    }
  | {
      readonly outcome: "relay";
      /** An authenticated session, a trusted network, or mail this server hands itself (core's submit). */
      readonly reason: "authenticated" | "network" | "local-submission";
    }
  | { readonly outcome: "refused"; readonly reason: RefusalReason; readonly cause?: DirectoryError }
  /** Not local and this client may not relay: left to other plugins, then core's 550 5.7.1. */
  | { readonly outcome: "no-route" }
);

export interface ClientFacts {
  remoteAddress: string;
  user: string | undefined;
  /** The message comes from this server itself (core's submit), not from an SMTP client. */
  localSubmission: boolean;
}

export interface RelayRules {
  networks: IpNetworkList;
  authenticated: boolean;
}

export async function decideRecipient(
  directory: Directory,
  relay: RelayRules,
  address: string,
  client: ClientFacts,
): Promise<RecipientDecision> {
  const parsed = parseAddress(address);
  if (parsed.kind === "address-literal" || parsed.kind === "malformed") {
    return { address, outcome: "refused", reason: parsed.kind };
  }
  if (parsed.kind === "mailbox" && !directory.isLocalDomain(parsed.domain)) {
    if (client.localSubmission) return { address, outcome: "relay", reason: "local-submission" };
    if (client.user !== undefined && relay.authenticated) return { address, outcome: "relay", reason: "authenticated" };
    if (relay.networks.contains(client.remoteAddress)) return { address, outcome: "relay", reason: "network" };
    return { address, outcome: "no-route" };
  }
  // A quoted string or a path separator is valid SMTP but never names a mailbox here, and
  // refusing it before any lookup keeps it away from directories and stores that build paths.
  // postmaster@ is exempt from nothing: it is always a dot-atom.
  if (parsed.kind === "mailbox" && !isMailboxLocalPart(parsed.localPart)) {
    return { address, outcome: "refused", reason: "unknown-user" };
  }
  const expansion = await directory.resolve(address);
  if (expansion.kind === "deliver") {
    return { address, outcome: "local", targets: expansion.targets, dropped: expansion.dropped };
  }
  const reason = refusalReason(expansion)!;
  return expansion.kind === "tempfail"
    ? { address, outcome: "refused", reason, cause: expansion.cause }
    : { address, outcome: "refused", reason };
}
