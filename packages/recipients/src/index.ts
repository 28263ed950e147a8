// @postern/recipients — local domains, who exists there, and who may relay. At each RCPT TO the
// recipient directory (aliases, lists, SRS bounces, mailbox lookups in PostgreSQL, LDAP or
// Dovecot, catch-alls) resolves a local address into the mailboxes and forwards it stands for,
// which core adds as the recipients; an unknown one is refused at once (no backscatter), one whose
// lookup failed is deferred; other domains are relayed for authenticated users and trusted
// networks, and left to core's default (550 5.7.1, no open relay) for everyone else.
import {
  accept,
  type Expansion as CoreExpansion,
  defer,
  IpNetworkList,
  localListener,
  type Plugin,
  parseOptions,
  type ResultKey,
  resultKey,
  type Session,
  type Verdict,
} from "@postern/core";
import { rememberSettings } from "./address-test.ts";
import { type Directory, openResolvedDirectory } from "./directory.ts";
import { refusalVerdict } from "./expansion-reply.ts";
import { type RecipientsOptions, recipientsOptionsSchema } from "./options.ts";
import { decideRecipient, type RecipientDecision } from "./policy.ts";

export type { AddressExplanation, AddressTest } from "./address-test.ts";
export { addressTestFor } from "./address-test.ts";
export type { AliasMap } from "./alias-map.ts";
export { aliasMapSchema, loadAliasYaml } from "./alias-map.ts";
export type { AliasEntry } from "./aliases-file.ts";
export { loadAliasesFile, parseAliases } from "./aliases-file.ts";
export type { Directory, OpenDirectoryContext } from "./directory.ts";
export { openDirectory } from "./directory.ts";
export type { DirectoryErrorCode } from "./directory-error.ts";
export { DirectoryError } from "./directory-error.ts";
export type { DovecotLookupOptions } from "./dovecot-userdb.ts";
export { dovecotLookup } from "./dovecot-userdb.ts";
export type { DroppedTarget, Expansion, ExpansionRules, Target } from "./expansion.ts";
export { expandRecipient } from "./expansion.ts";
export type { RefusalReason } from "./expansion-reply.ts";
export { refusalFor, refusalVerdict } from "./expansion-reply.ts";
export type { LdapLookupOptions } from "./ldap-lookup.ts";
export { ldapLookup } from "./ldap-lookup.ts";
export type { LookupResultKind } from "./lookup-answer.ts";
export type { CachedResolver, CacheStats, LookupCacheOptions } from "./lookup-cache.ts";
export { cachedResolver } from "./lookup-cache.ts";
export { mailboxList } from "./mailbox-list.ts";
export type { LookupOptions, RecipientsOptions } from "./options.ts";
export { recipientsOptionsSchema } from "./options.ts";
export type { RecipientDecision } from "./policy.ts";
export type { LookupParameter, PostgresLookupOptions } from "./postgres-lookup.ts";
export { postgresLookup } from "./postgres-lookup.ts";
export type { LookupAddress, Resolution, Resolver } from "./resolution.ts";
export { lookupAddress } from "./resolution.ts";
export { firstAnswer, withSubaddress } from "./resolver-chain.ts";
export type { Srs, SrsOptions, SrsReversal, SrsSeparator } from "./srs.ts";
export { createSrs, isSrsLocalPart } from "./srs.ts";
export { srsResolver } from "./srs-resolver.ts";

/** Every RCPT TO of the transaction this plugin decided on, in order (on `transaction.results`). */
export const recipientDecisions: ResultKey<readonly RecipientDecision[]> =
  resultKey<readonly RecipientDecision[]>("recipients");

const pluginName = "@postern/recipients";

/**
 * Mail this server hands itself (core's submit: delivery reports, a plugin's reports) arrives on
 * core's local listener, never on a socket: its recipients elsewhere may be relayed, as Postfix
 * relays what its pickup service gets. Compared by identity, so no configured listener can pass.
 */
function isLocalSubmission(session: Session): boolean {
  return session.listener === localListener;
}

/**
 * The core recipients an accepted local address becomes: each mailbox with its detail, each
 * forward with the envelope sender the next hop sees (the SRS form of MAIL FROM, so SPF passes
 * there; the null sender stays null, and without SRS configured the sender is kept as it is).
 */
function expansionFor(
  decision: Extract<RecipientDecision, { outcome: "local" }>,
  mailFrom: string,
  directory: Pick<Directory, "srs">,
): CoreExpansion[] {
  // An HMAC per message, so only when something is forwarded.
  const forwards = decision.targets.some((target) => target.kind === "forward");
  const forwardSender = forwards && mailFrom !== "" && directory.srs ? directory.srs.forward(mailFrom) : undefined;
  return decision.targets.map((target) => ({
    address: target.address,
    route: target.route,
    ...(target.detail === undefined ? {} : { detail: target.detail }),
    ...(target.kind === "forward" && forwardSender !== undefined ? { sender: forwardSender } : {}),
  }));
}

export default function recipients(options: RecipientsOptions): Plugin {
  const resolved = parseOptions(recipientsOptionsSchema, options, pluginName);
  // Files are named relative to the working directory when the config is loaded, like every path option.
  const baseDir = process.cwd();
  const relay = { networks: new IpNetworkList(resolved.relay.networks), authenticated: resolved.relay.authenticated };
  let directory: Directory | undefined;

  const plugin: Plugin = {
    name: pluginName,
    async setup(context) {
      directory = await openResolvedDirectory(resolved, { baseDir, prefix: pluginName });
      if (resolved.anyLocalPartByDefault && resolved.domains.size > 0) {
        // Mail for made-up addresses is stored, and a dictionary attack learns nothing: fine for a
        // test site, rarely what an MX means. One line at start, so the operator sees the choice.
        context.logger.warn(
          { plugin: pluginName, domains: [...resolved.domains] },
          'no mailboxes and no lookups: every local part of the local domains is accepted; list who exists in mailboxes or lookups, or write "*@domain" in mailboxes to accept any on purpose',
        );
      }
    },
    async close() {
      await directory?.close();
      directory = undefined;
    },
    hooks: {
      async rcptTo(transaction, recipient, { log }): Promise<Verdict | undefined> {
        if (!directory) return defer("4.3.0", "Recipient directory not open, try again later");
        const { session } = transaction;
        const decision = await decideRecipient(directory, relay, recipient.address, {
          remoteAddress: session.remoteAddress,
          user: session.user,
          localSubmission: isLocalSubmission(session),
        });
        transaction.results.set(recipientDecisions, [...(transaction.results.get(recipientDecisions) ?? []), decision]);
        switch (decision.outcome) {
          case "local":
            if (decision.dropped.length > 0)
              log.info({ address: recipient.address, dropped: decision.dropped }, "list members dropped");
            return accept({ expand: expansionFor(decision, transaction.mailFrom.address, directory) });
          case "relay":
            return accept({ route: "relay" });
          case "no-route":
            return undefined;
          case "refused":
            if (decision.cause)
              log.warn({ err: decision.cause, address: recipient.address }, "recipient lookup failed");
            return refusalVerdict(decision.reason);
        }
      },
    },
  };
  rememberSettings(plugin, { options: resolved, baseDir, relay });
  return plugin satisfies Plugin;
}
