// Mailboxes or aliases from an LDAP directory (ldapts): one search per lookup, with a filter in
// which %s is the address, %u the local part, %d the domain (Postfix's ldap_table conventions),
// each escaped (RFC 4515) so an address cannot change the filter. One connection, bound on first
// use and re-bound after a reconnect; a search that fails or takes longer than timeoutMs is
// "tempfail", and the next lookup connects again.
import { Client, type Entry, Filter } from "ldapts";
import { DirectoryError } from "./directory-error.ts";
import { answerFrom, type LookupResultKind } from "./lookup-answer.ts";
import { withDeadline } from "./lookup-deadline.ts";
import type { LookupAddress, Resolution, Resolver } from "./resolution.ts";

export interface LdapLookupOptions {
  /** ldap://host:port or ldaps://host:port. */
  url: string;
  /** Simple bind; anonymous when absent. */
  bindDn?: string;
  bindPassword?: string;
  /** Where to search, e.g. "ou=people,dc=example,dc=com". */
  base: string;
  scope?: "base" | "one" | "sub";
  /** e.g. "(&(objectClass=inetOrgPerson)(|(mail=%s)(mailLocalAddress=%s)))". */
  filter: string;
  /** "mailbox" (default): an entry means the mailbox exists; "aliases": the attribute's values are the addresses. */
  result?: LookupResultKind;
  /** The attribute that holds the mailbox (default "mail") or the alias addresses (e.g. "rfc822MailMember"). */
  attribute?: string;
  /** Per search, connection and bind included (default 5,000 ms). */
  timeoutMs?: number;
}

/** Replaces %s, %u, %d (and %% with %) by the escaped parts of the address. */
export function expandFilter(template: string, address: LookupAddress): string {
  return template.replace(/%([sud%])/g, (_, code: string) => {
    if (code === "%") return "%";
    const value = code === "s" ? address.address : code === "u" ? address.localPart : address.domain;
    return Filter.escape(value);
  });
}

/** The values of `attribute` in an entry; attribute names are case-insensitive (RFC 4512 §2.5). */
function attributeValues(entry: Entry, attribute: string): string[] {
  const key = Object.keys(entry).find((name) => name.toLowerCase() === attribute.toLowerCase());
  const value = key === undefined ? undefined : entry[key];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map((item) => item.toString());
}

export function ldapLookup(options: LdapLookupOptions): Resolver {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const attribute = options.attribute ?? "mail";
  const result = options.result ?? "mailbox";
  const name = `ldap ${options.url}`;
  let client: Client | undefined;
  let bound: Promise<Client> | undefined;

  const connect = (): Promise<Client> => {
    bound ??= (async () => {
      const fresh = new Client({ url: options.url, timeout: timeoutMs, connectTimeout: timeoutMs, autoRebind: true });
      if (options.bindDn !== undefined) await fresh.bind(options.bindDn, options.bindPassword ?? "");
      client = fresh;
      return fresh;
    })();
    return bound;
  };

  const reset = async () => {
    const old = client;
    client = undefined;
    bound = undefined;
    await old?.unbind().catch(() => {});
  };

  return {
    name,
    async resolve(address: LookupAddress): Promise<Resolution> {
      try {
        const { searchEntries } = await withDeadline(
          name,
          timeoutMs,
          connect().then((connected) =>
            connected.search(options.base, {
              scope: options.scope ?? "sub",
              filter: expandFilter(options.filter, address),
              attributes: [attribute],
              sizeLimit: 100,
            }),
          ),
        );
        const values = searchEntries.flatMap((entry) => attributeValues(entry, attribute));
        return answerFrom(name, address, searchEntries.length > 0, values, result);
      } catch (error) {
        // A broken connection or a failed bind: start over on the next lookup.
        await reset();
        return { kind: "tempfail", cause: DirectoryError.from(name, error) };
      }
    },
    async close() {
      await reset();
    },
  };
}
