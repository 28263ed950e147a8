// Every alias source (aliases files, YAML maps, inline options) merged into one table, checked
// once when the directory opens, and the resolvers that read it: aliases and domain aliases (asked
// before the mailbox lookups), catch-alls (asked after them, so a catch-all never hides a mailbox).
import { addressKey, ConfigError, isMailboxLocalPart, normalizeDomain, splitSubaddress } from "@postern/core";
import { type LookupAddress, lookupAddress, type Resolution, type Resolver, unknown } from "./resolution.ts";

/** One alias as read from any source, with where it was written (for errors). */
export interface AliasSourceEntry {
  readonly name: string;
  readonly targets: readonly string[];
  /** `/etc/aliases` and `line 12`, or `aliases.map` and `aliases.info@example.com`. */
  readonly file?: string;
  readonly key: string;
}

export interface AliasTable {
  /** Aliases of one address (`info@example.com`). */
  readonly exact: ReadonlyMap<string, readonly string[]>;
  /** Aliases of a local part in every local domain (`team`, from /etc/aliases). */
  readonly bare: ReadonlyMap<string, readonly string[]>;
  readonly domainAliases: ReadonlyMap<string, string>;
  readonly catchAll: ReadonlyMap<string, readonly string[]>;
}

export interface AliasTableInput {
  entries: readonly AliasSourceEntry[];
  domainAliases: readonly { from: string; to: string; key: string; file?: string }[];
  catchAll: readonly { domain: string; targets: readonly string[]; key: string; file?: string }[];
  /** The local domains (without the alias domains). */
  localDomains: ReadonlySet<string>;
}

function configError(where: { key: string; file?: string }, expected: string): ConfigError {
  return new ConfigError(where.key, expected, where.file === undefined ? {} : { file: where.file });
}

function describe(where: { key: string; file?: string }): string {
  return [where.file, where.key].filter(Boolean).join(" ");
}

/** A target is a bare local part (`bob`) or an address; checked here so a typo fails at startup. */
function checkTargets(where: { key: string; file?: string }, targets: readonly string[]): void {
  for (const target of targets) {
    const valid = target.includes("@") ? lookupAddress(target) !== undefined : isMailboxLocalPart(target);
    if (!valid) throw configError(where, `"${target}" is not an address or a local name`);
  }
}

export function buildAliasTable(input: AliasTableInput): AliasTable {
  const domainAliases = new Map<string, string>();
  for (const alias of input.domainAliases) {
    const from = normalizeDomain(alias.from);
    const to = normalizeDomain(alias.to);
    if (from === undefined || to === undefined) throw configError(alias, 'expected "alias.example: example.com"');
    // Only onto a local domain: mapping a domain onto someone else's would forward every
    // invented local part there, and refusing unknown users at RCPT would be up to them.
    if (!input.localDomains.has(to)) throw configError(alias, `${to} is not one of the local domains`);
    if (input.localDomains.has(from)) {
      throw configError(alias, `${from} is a local domain itself; list it in domains or alias it, not both`);
    }
    domainAliases.set(from, to);
  }
  const isLocal = (domain: string) => input.localDomains.has(domain) || domainAliases.has(domain);

  const exact = new Map<string, readonly string[]>();
  const bare = new Map<string, readonly string[]>();
  const origin = new Map<string, AliasSourceEntry>();
  for (const entry of input.entries) {
    let key: string | undefined;
    let table = bare;
    if (entry.name.includes("@")) {
      const address = lookupAddress(entry.name);
      if (address === undefined) throw configError(entry, `"${entry.name}" is not an address`);
      if (!isLocal(address.domain)) throw configError(entry, `${address.domain} is not one of the local domains`);
      key = address.address;
      table = exact;
    } else {
      // A bare name is matched against local parts the plugin accepts: dot-atoms (isMailboxLocalPart).
      if (!isMailboxLocalPart(entry.name)) throw configError(entry, `"${entry.name}" is not a local name`);
      key = entry.name.toLowerCase();
    }
    const earlier = origin.get(`${table === exact ? "@" : ""}${key}`);
    if (earlier) throw configError(entry, `"${entry.name}" is also defined in ${describe(earlier)}; keep one`);
    origin.set(`${table === exact ? "@" : ""}${key}`, entry);
    checkTargets(entry, entry.targets);
    table.set(key, entry.targets);
  }

  const catchAll = new Map<string, readonly string[]>();
  for (const rule of input.catchAll) {
    const domain = normalizeDomain(rule.domain);
    if (domain === undefined || !isLocal(domain)) {
      throw configError(rule, `${rule.domain} is not one of the local domains`);
    }
    checkTargets(rule, rule.targets);
    catchAll.set(domain, rule.targets);
  }
  return { exact, bare, domainAliases, catchAll };
}

/** Aliases, then the domain alias; "unknown" lets the mailbox lookups answer. */
export function aliasResolver(table: AliasTable, name = "aliases"): Resolver {
  return {
    name,
    async resolve(address: LookupAddress): Promise<Resolution> {
      const targets = table.exact.get(address.address) ?? table.bare.get(address.localPart);
      if (targets) return { kind: "expand", addresses: targets };
      const domain = table.domainAliases.get(address.domain);
      if (domain !== undefined) return { kind: "expand", addresses: [`${address.localPart}@${domain}`] };
      return unknown;
    },
  };
}

/**
 * Asked after every mailbox lookup: the opt-in catch-all of the address's domain, else — for a
 * domain whose every local part is a mailbox (`*@domain`, or no word at all on who exists) — the
 * address itself.
 */
export function catchAllResolver(table: AliasTable, everyUser: ReadonlySet<string>, delimiters: string): Resolver {
  return {
    name: "catch-all",
    async resolve(address: LookupAddress): Promise<Resolution> {
      const targets = table.catchAll.get(address.domain);
      if (targets) return { kind: "expand", addresses: targets };
      if (!everyUser.has(address.domain)) return unknown;
      // Every local part is a mailbox, but alice+news is still alice's (with the detail as written).
      const written = address.original.slice(0, address.original.lastIndexOf("@"));
      const { base, detail } = written.startsWith('"')
        ? { base: written, detail: undefined }
        : splitSubaddress(written, delimiters);
      if (detail === undefined) return { kind: "mailbox", mailbox: address.address };
      return { kind: "mailbox", mailbox: addressKey(`${base}@${address.domain}`), detail };
    },
  };
}
