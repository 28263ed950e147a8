// @postern/recipients — local domains, address tables and who may relay. Claims each recipient
// with a route ("local" or "relay"), refuses unknown local users at RCPT, and leaves everything
// else to core's default (550 5.7.1, no open relay).
import { accept, type Plugin, parseOptions, type ResultKey, reject, resultKey, type Verdict } from "@postern/core";
import { type RecipientsOptions, recipientsOptionsSchema } from "./options.ts";
import { decideRecipient, type RecipientDecision } from "./policy.ts";
import { networkList } from "./relay-networks.ts";

// The recipient directory (issue 15): resolvers, expansion, SRS and lookup backends. The plugin
// above is wired to it once core's recipient expansion lands (issue 13).
export type { AliasMap } from "./alias-map.ts";
export { aliasMapSchema, loadAliasYaml } from "./alias-map.ts";
export type { AliasEntry } from "./aliases-file.ts";
export { loadAliasesFile, parseAliases } from "./aliases-file.ts";
export type { Directory, OpenDirectoryContext } from "./directory.ts";
export { openDirectory } from "./directory.ts";
export type { DirectoryErrorCode } from "./directory-error.ts";
export { DirectoryError } from "./directory-error.ts";
export type { DirectoryOptions, LookupOptions, ResolvedDirectoryOptions } from "./directory-options.ts";
export { directoryOptionsSchema } from "./directory-options.ts";
export type { DovecotLookupOptions } from "./dovecot-userdb.ts";
export { dovecotLookup } from "./dovecot-userdb.ts";
export type { DroppedTarget, Expansion, ExpansionRules, Target } from "./expansion.ts";
export { expandRecipient } from "./expansion.ts";
export { refusalFor } from "./expansion-reply.ts";
export type { LdapLookupOptions } from "./ldap-lookup.ts";
export { ldapLookup } from "./ldap-lookup.ts";
export type { LookupResultKind } from "./lookup-answer.ts";
export type { CachedResolver, CacheStats, LookupCacheOptions } from "./lookup-cache.ts";
export { cachedResolver } from "./lookup-cache.ts";
export type { MailAddress } from "./mail-address.ts";
export { parseMailAddress } from "./mail-address.ts";
export { mailboxList } from "./mailbox-list.ts";
export type { RecipientsOptions } from "./options.ts";
export type { RecipientDecision } from "./policy.ts";
export type { LookupParameter, PostgresLookupOptions } from "./postgres-lookup.ts";
export { postgresLookup } from "./postgres-lookup.ts";
export type { Resolution, Resolver } from "./resolution.ts";
export { firstAnswer, withSubaddress } from "./resolver-chain.ts";
export type { Srs, SrsOptions, SrsReversal, SrsSeparator } from "./srs.ts";
export { createSrs, isSrsLocalPart } from "./srs.ts";
export { srsResolver } from "./srs-resolver.ts";

/** Every RCPT TO of the transaction this plugin decided on, in order (on `transaction.results`). */
export const recipientDecisions: ResultKey<readonly RecipientDecision[]> =
  resultKey<readonly RecipientDecision[]>("recipients");

const pluginName = "@postern/recipients";

function verdictFor(decision: RecipientDecision): Verdict | undefined {
  switch (decision.outcome) {
    case "local":
      return accept({ route: "local" });
    case "relay":
      return accept({ route: "relay" });
    case "no-route":
      return undefined;
    case "refused":
      switch (decision.reason) {
        case "unknown-user":
          // 5.1.1: the part left of "@" names no mailbox here (RFC 3463).
          return reject("5.1.1", "No such user here");
        case "address-literal":
          // user@[192.0.2.1] is valid syntax (RFC 5321 §4.1.3), so not a 501; the mailbox part may
          // be fine too, so not 5.1.1. What is refused is the destination *system*: Postern has no
          // mailboxes at address literals and does not relay to them — 5.1.2 says exactly that.
          return reject("5.1.2", "Address literals are not accepted here; use a domain name");
        case "malformed":
          // 501 is the reply for a syntax error in a command's argument (RFC 5321 §4.2.3), and
          // 5.1.3 is "bad destination mailbox address syntax" (RFC 3463). Not 550 5.1.1: that
          // would tell the sender the address is well-formed but unknown.
          return reject("5.1.3", "Bad destination mailbox address syntax", 501);
      }
  }
}

export default function recipients(options: RecipientsOptions): Plugin {
  const resolved = parseOptions(recipientsOptionsSchema, options, pluginName);
  const isTrustedNetwork = networkList(resolved.relay.networks);
  return {
    name: pluginName,
    hooks: {
      rcptTo(transaction, recipient) {
        const decision = decideRecipient(resolved, isTrustedNetwork, recipient.address, {
          remoteAddress: transaction.session.remoteAddress,
          user: transaction.session.user,
        });
        transaction.results.set(recipientDecisions, [...(transaction.results.get(recipientDecisions) ?? []), decision]);
        return verdictFor(decision);
      },
    },
  } satisfies Plugin;
}
