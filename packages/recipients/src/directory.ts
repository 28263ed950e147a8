// The recipient directory: the options turned into resolvers, asked in Postfix's order —
// SRS bounces, aliases (and domain aliases), mailbox lookups, catch-alls — behind the expansion
// that follows lists, bounds them and keeps postmaster@/abuse@ deliverable.
import { readFile } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { ConfigError, parseOptions } from "@postern/core";
import { type AliasMap, loadAliasYaml, targetsOf } from "./alias-map.ts";
import { type AliasSourceEntry, aliasResolver, buildAliasTable, catchAllResolver } from "./alias-table.ts";
import { loadAliasesFile } from "./aliases-file.ts";
import { dovecotLookup } from "./dovecot-userdb.ts";
import { type Expansion, expandRecipient } from "./expansion.ts";
import { ldapLookup } from "./ldap-lookup.ts";
import { cachedResolver } from "./lookup-cache.ts";
import { mailboxList } from "./mailbox-list.ts";
import {
  type LookupOptions,
  type RecipientsOptions,
  type ResolvedRecipientsOptions,
  recipientsOptionsSchema,
} from "./options.ts";
import { postgresLookup } from "./postgres-lookup.ts";
import type { LookupAddress, Resolver } from "./resolution.ts";
import { firstAnswer, withSubaddress } from "./resolver-chain.ts";
import { createSrs, type Srs } from "./srs.ts";
import { srsResolver } from "./srs-resolver.ts";

export interface Directory {
  /** What `recipient` (as given at RCPT TO) stands for. */
  resolve(recipient: string): Promise<Expansion>;
  /** Local domains, alias domains and the SRS domain. */
  isLocalDomain(domain: string): boolean;
  /** The SRS codec, when configured: outbound rewrites forwarded senders with `srs.forward`. */
  readonly srs: Srs | undefined;
  /** Every resolver in the order asked, for `postern address test` and logs. */
  readonly resolvers: readonly string[];
  close(): Promise<void>;
}

export interface OpenDirectoryContext {
  /** Where relative file names are resolved from (default: the working directory). */
  baseDir?: string;
  /** The key prefix of option errors (default "@postern/recipients"). */
  prefix?: string;
  /** The clock of the caches and SRS (tests move it). */
  now?: () => number;
}

async function aliasEntries(files: readonly string[], map: AliasMap | undefined, baseDir: string, prefix: string) {
  const entries: AliasSourceEntry[] = [];
  const domainAliases: { from: string; to: string; key: string; file?: string }[] = [];
  const catchAll: { domain: string; targets: readonly string[]; key: string; file?: string }[] = [];
  const addMap = (source: AliasMap, where: { file?: string; prefix: string }) => {
    const file = where.file === undefined ? {} : { file: where.file };
    for (const [name, value] of Object.entries(source.aliases ?? {})) {
      entries.push({ name, targets: targetsOf(value), key: `${where.prefix}aliases.${name}`, ...file });
    }
    for (const [from, to] of Object.entries(source.domainAliases ?? {})) {
      domainAliases.push({ from, to, key: `${where.prefix}domainAliases.${from}`, ...file });
    }
    for (const [domain, value] of Object.entries(source.catchAll ?? {})) {
      catchAll.push({ domain, targets: targetsOf(value), key: `${where.prefix}catchAll.${domain}`, ...file });
    }
  };
  for (const name of files) {
    const file = resolvePath(baseDir, name);
    if (/\.ya?ml$/i.test(file)) addMap(await loadAliasYaml(file), { file, prefix: "" });
    else {
      for (const entry of await loadAliasesFile(file)) {
        entries.push({ name: entry.name, targets: entry.targets, key: `line ${entry.line}`, file: entry.file });
      }
    }
  }
  if (map) addMap(map, { prefix: `${prefix}.aliases.map.` });
  return { entries, domainAliases, catchAll };
}

async function readSecrets(file: string, prefix: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(`${prefix}.srs.secretsFile`, `cannot read ${file} (${reason})`, { cause: error });
  }
  const secrets = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
  if (secrets.length === 0) throw new ConfigError(`${prefix}.srs.secretsFile`, `${file} holds no secret`);
  return secrets;
}

function lookupResolver(lookup: LookupOptions, now: (() => number) | undefined): Resolver {
  if (lookup.type === "mailboxes") return mailboxList(lookup.mailboxes);
  const backend =
    lookup.type === "postgres"
      ? postgresLookup(lookup)
      : lookup.type === "ldap"
        ? ldapLookup(lookup)
        : dovecotLookup(lookup);
  if (lookup.cache === false) return backend;
  return cachedResolver(backend, { ...lookup.cache, ...(now ? { now } : {}) });
}

/** Validates the options (one line naming the key) and opens the directory they describe. */
export async function openDirectory(input: RecipientsOptions, context: OpenDirectoryContext = {}): Promise<Directory> {
  const prefix = context.prefix ?? "@postern/recipients";
  return openResolvedDirectory(parseOptions(recipientsOptionsSchema, input, prefix), context);
}

/** Opens the directory of options recipients() already validated: reads the alias files and secrets. */
export async function openResolvedDirectory(
  options: ResolvedRecipientsOptions,
  context: OpenDirectoryContext = {},
): Promise<Directory> {
  const prefix = context.prefix ?? "@postern/recipients";
  const baseDir = context.baseDir ?? process.cwd();
  const localDomains = options.domains;
  const sources = await aliasEntries(options.aliases.files, options.aliases.map, baseDir, prefix);
  const table = buildAliasTable({ ...sources, localDomains });

  let srs: Srs | undefined;
  if (options.srs) {
    const secrets = options.srs.secrets ?? (await readSecrets(resolvePath(baseDir, options.srs.secretsFile!), prefix));
    srs = createSrs({
      domain: options.srs.domain,
      secrets,
      separator: options.srs.separator,
      hashLength: options.srs.hashLength,
      hashMinLength: options.srs.hashMinLength ?? options.srs.hashLength,
      maxAgeDays: options.srs.maxAgeDays,
      ...(context.now ? { now: context.now } : {}),
    });
  }
  const isLocalDomain = (domain: string) =>
    localDomains.has(domain) || table.domainAliases.has(domain) || domain === options.srs?.domain;

  const delimiter = options.subaddressDelimiter;
  const backends = options.lookups.map((lookup) => withSubaddress(lookupResolver(lookup, context.now), delimiter));
  const chain: Resolver[] = [
    ...(srs ? [srsResolver(srs, options.srs!.domain)] : []),
    withSubaddress(aliasResolver(table), delimiter),
    ...backends,
    catchAllResolver(table, options.everyUser, delimiter),
  ];
  const resolveAll = firstAnswer(chain);
  const resolveMailbox = firstAnswer(backends);
  // postmaster@ and abuse@ of a local domain go to the configured mailbox; without one, to their
  // own mailbox (postmaster@example.com), so they are never refused.
  const roleMailbox = (address: LookupAddress | "postmaster"): string | undefined => {
    if (address === "postmaster") return options.postmaster ?? "postmaster";
    if (address.localPart === "postmaster") return options.postmaster ?? address.address;
    if (address.localPart === "abuse") return options.abuse ?? options.postmaster ?? address.address;
    return undefined;
  };

  return {
    srs,
    isLocalDomain,
    resolvers: chain.map((resolver) => resolver.name),
    resolve: (recipient) =>
      expandRecipient(recipient, {
        isLocalDomain,
        resolve: resolveAll,
        resolveMailbox,
        roleMailbox,
        maxAddresses: options.limits.maxAddresses,
        maxDepth: options.limits.maxDepth,
        routes: options.routes,
      }),
    async close() {
      await Promise.all(chain.map((resolver) => resolver.close?.()));
    },
  };
}
