// Expands one recipient into the mailboxes and remote addresses it stands for: aliases and lists
// are followed, duplicates collapse, size and depth are bounded, and a loop (a → b → a) ends the
// branch that closed it. A list member that is unknown is dropped (and reported) rather than
// failing the whole list; a lookup that fails fails the whole recipient — never a partial accept.
import { isMailboxLocalPart } from "@postern/core";
import { DirectoryError } from "./directory-error.ts";
import { type LookupAddress, lookupAddress, type Resolution } from "./resolution.ts";

export interface Target {
  /** A local mailbox (`alice@example.com`) or the remote address mail is forwarded to. */
  readonly address: string;
  readonly kind: "mailbox" | "forward";
  /** The route core should give it (`local` for mailboxes, the forwarding route otherwise). */
  readonly route: string;
  /** The subaddress detail (`news` of `alice+news@…`), for stores that file it. */
  readonly detail?: string;
  /** The addresses expanded to get here, the recipient first. */
  readonly via: readonly string[];
}

export interface DroppedTarget {
  readonly address: string;
  readonly reason: "unknown" | "loop" | "malformed";
  readonly via: readonly string[];
}

export type Expansion =
  | { readonly kind: "deliver"; readonly targets: readonly Target[]; readonly dropped: readonly DroppedTarget[] }
  /** Nothing here by that name (550 5.1.1). */
  | { readonly kind: "unknown"; readonly dropped: readonly DroppedTarget[] }
  /** A lookup failed (451 4.3.0). */
  | { readonly kind: "tempfail"; readonly cause: DirectoryError }
  /** Every branch ended in a loop (550 5.4.6). */
  | { readonly kind: "loop"; readonly dropped: readonly DroppedTarget[] }
  /** More addresses or deeper nesting than the limits allow (550 5.2.4, mailing list expansion problem). */
  | { readonly kind: "too-large"; readonly limit: "maxAddresses" | "maxDepth"; readonly value: number };

export interface ExpansionRules {
  isLocalDomain(domain: string): boolean;
  /** Every resolver in order (SRS, aliases, mailbox lookups, catch-all). */
  resolve(address: LookupAddress): Promise<Resolution>;
  /** Mailbox lookups only: for an alias that names itself (`alice: alice, bob`). */
  resolveMailbox(address: LookupAddress): Promise<Resolution>;
  /** The configured mailbox of a role address (postmaster@, abuse@ of a local domain), if it is one. */
  roleMailbox(address: LookupAddress | "postmaster"): string | undefined;
  maxAddresses: number;
  maxDepth: number;
  routes: { mailbox: string; forward: string };
}

type Stop = Extract<Expansion, { kind: "tempfail" } | { kind: "too-large" }>;

/** Parses a target; a bare name is in the domain of the address it came from. */
function parseTarget(text: string, domain: string): LookupAddress | undefined {
  if (text.includes("@")) return lookupAddress(text);
  return isMailboxLocalPart(text) ? lookupAddress(`${text}@${domain}`) : undefined;
}

export async function expandRecipient(recipient: string, rules: ExpansionRules): Promise<Expansion> {
  if (recipient.toLowerCase() === "postmaster") {
    // RFC 5321 §4.1.1.3: the domain-less postmaster every SMTP server must accept.
    const mailbox = rules.roleMailbox("postmaster")!;
    return deliverOne(mailbox, rules, [recipient]);
  }
  const top = lookupAddress(recipient);
  if (top === undefined) return { kind: "unknown", dropped: [{ address: recipient, reason: "malformed", via: [] }] };

  const result = await expandParsed(top, rules);
  const role = rules.isLocalDomain(top.domain) ? rules.roleMailbox(top) : undefined;
  // postmaster@ and abuse@ always resolve (RFC 5321 §4.5.1, RFC 2142): an alias may send them
  // elsewhere, but when it names nobody, loops or its directory is down, the configured mailbox
  // takes the mail.
  if (role !== undefined && (result.kind !== "deliver" || result.targets.length === 0)) {
    return deliverOne(role, rules, [top.address]);
  }
  return result;
}

function deliverOne(mailbox: string, rules: ExpansionRules, via: string[]): Expansion {
  const parsed = lookupAddress(mailbox);
  const local = parsed === undefined || rules.isLocalDomain(parsed.domain);
  // A local mailbox in its normalized form; a remote one as configured (its local part's case kept).
  const address = local ? (parsed?.address ?? mailbox) : parsed!.original;
  return {
    kind: "deliver",
    targets: [
      {
        address,
        kind: local ? "mailbox" : "forward",
        route: local ? rules.routes.mailbox : rules.routes.forward,
        via: [...via, address].filter((value, index, all) => all.indexOf(value) === index),
      },
    ],
    dropped: [],
  };
}

async function expandParsed(top: LookupAddress, rules: ExpansionRules): Promise<Expansion> {
  const targets = new Map<string, Target>();
  const dropped: DroppedTarget[] = [];
  const visited = new Set<string>();
  let count = 0;

  // Keyed by the normalized address: Bob@x.example and bob@x.example are one recipient.
  const add = (normalized: string, target: Target) => {
    const key = `${target.kind}:${normalized}`;
    if (!targets.has(key)) targets.set(key, target);
  };

  // `path` holds the addresses above this one, the recipient first.
  const visit = async (
    address: LookupAddress,
    path: readonly string[],
    mailboxOnly: boolean,
  ): Promise<Stop | undefined> => {
    const key = `${mailboxOnly ? "mailbox:" : ""}${address.address}`;
    if (visited.has(key)) return undefined; // reached twice (a list in two lists): collapsed
    visited.add(key);
    if (++count > rules.maxAddresses) return { kind: "too-large", limit: "maxAddresses", value: rules.maxAddresses };
    if (path.length > rules.maxDepth) return { kind: "too-large", limit: "maxDepth", value: rules.maxDepth };
    const via = [...path, address.address];

    if (!rules.isLocalDomain(address.domain)) {
      // Forwarded as written: only the receiving system may decide its local parts' case.
      add(address.address, { address: address.original, kind: "forward", route: rules.routes.forward, via });
      return undefined;
    }
    let resolution: Resolution;
    try {
      resolution = await (mailboxOnly ? rules.resolveMailbox(address) : rules.resolve(address));
    } catch (error) {
      // Resolvers answer tempfail rather than throw; a throw is a bug, and still fails closed.
      return { kind: "tempfail", cause: DirectoryError.from("directory", error) };
    }
    switch (resolution.kind) {
      case "mailbox": {
        const mailbox = lookupAddress(resolution.mailbox)?.address ?? resolution.mailbox;
        add(mailbox, {
          address: mailbox,
          kind: "mailbox",
          route: rules.routes.mailbox,
          via: via.at(-1) === mailbox ? via : [...via, mailbox],
          ...(resolution.detail === undefined ? {} : { detail: resolution.detail }),
        });
        return undefined;
      }
      case "unknown":
        dropped.push({ address: address.address, reason: "unknown", via });
        return undefined;
      case "tempfail":
        return { kind: "tempfail", cause: resolution.cause };
      case "expand":
        for (const text of resolution.addresses) {
          const child = parseTarget(text, address.domain);
          if (child === undefined) {
            dropped.push({ address: text, reason: "malformed", via });
            continue;
          }
          let stop: Stop | undefined;
          if (child.address === address.address) {
            // "alice: alice, bob": alice's own mailbox, not her alias again.
            stop = await visit(child, path, true);
          } else if (via.includes(child.address)) {
            dropped.push({ address: child.address, reason: "loop", via: [...via, child.address] });
            continue;
          } else {
            stop = await visit(child, via, false);
          }
          if (stop) return stop;
        }
        return undefined;
    }
  };

  const stop = await visit(top, [], false);
  if (stop) return stop;
  if (targets.size > 0) return { kind: "deliver", targets: [...targets.values()], dropped };
  if (dropped.some((entry) => entry.reason === "loop")) return { kind: "loop", dropped };
  return { kind: "unknown", dropped };
}
