// The options of recipients(), one schema: local domains, who exists there (mailboxes, aliases,
// lookups), SRS, bounds, routes, and who may relay. Validated with zod when the config loads (one
// line naming the key through core's parseOptions), and resolved to the form the directory and
// the plugin use: normalized domains, parsed networks, defaults filled, `mailboxes` turned into a
// lookup and `*@domain` entries into the domains whose every local part is a mailbox.
import { IpNetworkList, normalizeDomain, parseAddress } from "@postern/core";
import { z } from "zod";
import { aliasMapSchema } from "./alias-map.ts";

const domain = z.string().transform((value, context) => {
  const normalized = normalizeDomain(value);
  if (normalized === undefined) {
    context.addIssue({ code: "custom", message: 'expected a domain name such as "example.com"' });
    return z.NEVER;
  }
  return normalized;
});

const address = z.string().refine((value) => parseAddress(value).kind === "mailbox", {
  message: 'expected an address such as "admin@example.com"',
});

const milliseconds = (fallback: number) =>
  z.number({ error: "expected a duration in milliseconds" }).int().min(0).max(86_400_000).default(fallback);

const cacheSchema = z
  .union([
    z.literal(false),
    z.strictObject({
      ttlMs: milliseconds(60_000),
      negativeTtlMs: milliseconds(30_000),
      maxEntries: z.number().int().positive().default(10_000),
    }),
  ])
  .prefault({});

const resultKind = z.enum(["mailbox", "aliases"], { error: 'expected "mailbox" or "aliases"' }).default("mailbox");
const timeoutMs = z.number({ error: "expected milliseconds" }).int().positive().max(600_000).default(5_000);

const postgresLookup = z.strictObject({
  type: z.literal("postgres"),
  connectionString: z
    .string()
    .refine((value) => /^postgres(ql)?:\/\//.test(value), { message: 'expected "postgres://user@host:5432/db"' }),
  query: z.string().refine((value) => /\$1\b/.test(value), {
    message: 'expected a query with $1, e.g. "SELECT mailbox FROM users WHERE address = $1"',
  }),
  parameters: z
    .array(z.enum(["address", "localPart", "domain"], { error: 'expected "address", "localPart" or "domain"' }))
    .min(1)
    .default(["address"]),
  result: resultKind,
  timeoutMs,
  poolSize: z.number().int().min(1).max(100).default(4),
  cache: cacheSchema,
});

const ldapLookup = z.strictObject({
  type: z.literal("ldap"),
  url: z.string().refine((value) => /^ldaps?:\/\/[^/]+/.test(value), {
    message: 'expected "ldap://host:389" or "ldaps://host:636"',
  }),
  bindDn: z.string().optional(),
  bindPassword: z.string().optional(),
  base: z.string().min(1, { message: 'expected a search base such as "ou=people,dc=example,dc=com"' }),
  scope: z.enum(["base", "one", "sub"]).default("sub"),
  filter: z.string().refine((value) => /^\(.*\)$/s.test(value) && /%[sud]/.test(value), {
    message: 'expected a filter in parentheses using %s, %u or %d, e.g. "(mail=%s)"',
  }),
  result: resultKind,
  attribute: z.string().min(1).default("mail"),
  timeoutMs,
  cache: cacheSchema,
});

const dovecotLookup = z.strictObject({
  type: z.literal("dovecot"),
  socket: z.string().min(1, { message: 'expected the auth-userdb socket path, e.g. "/run/dovecot/auth-userdb"' }),
  username: z.enum(["address", "localPart"]).default("address"),
  service: z.string().min(1).default("smtp"),
  timeoutMs,
  cache: cacheSchema,
});

const staticLookup = z.strictObject({
  type: z.literal("mailboxes"),
  mailboxes: z.array(address),
});

const lookupSchema = z.discriminatedUnion("type", [staticLookup, postgresLookup, ldapLookup, dovecotLookup], {
  error: 'expected a lookup with type "mailboxes", "postgres", "ldap" or "dovecot"',
});

const srsSchema = z
  .strictObject({
    domain,
    secrets: z
      .array(z.string().min(8, { message: "expected a secret of at least 8 characters" }))
      .min(1)
      .optional(),
    /** postsrsd's format: one secret a line, the first signs. */
    secretsFile: z.string().min(1).optional(),
    separator: z.enum(["=", "+", "-"]).default("="),
    hashLength: z.number().int().min(4).max(27).default(4),
    hashMinLength: z.number().int().min(4).max(27).optional(),
    maxAgeDays: z.number().int().min(1).max(1000).default(21),
  })
  .refine((value) => (value.secrets === undefined) !== (value.secretsFile === undefined), {
    message: "expected either secrets or secretsFile",
    path: ["secrets"],
  })
  .refine((value) => value.hashMinLength === undefined || value.hashMinLength <= value.hashLength, {
    message: "expected hashMinLength ≤ hashLength",
    path: ["hashMinLength"],
  });

const network = z.string().transform((value, context) => {
  const parsed = IpNetworkList.parse([value]);
  if ("invalid" in parsed) {
    context.addIssue({
      code: "custom",
      message: 'expected an IP address or CIDR network such as "10.0.0.0/8" or "2001:db8::/32"',
    });
    return z.NEVER;
  }
  return parsed.networks[0]!;
});

const routeName = z.string().min(1, { message: 'expected a route name such as "local"' });

export const recipientsOptionsSchema = z
  .strictObject({
    domains: z.array(domain, { error: 'expected a list of local domains, e.g. ["example.com"]' }),
    /** Known addresses ("alice@example.com") and domains whose every local part is a mailbox ("*@example.org"). */
    mailboxes: z.array(z.string()).optional(),
    /** Where postmaster@ of every local domain (and the bare postmaster) goes; unset: its own mailbox. */
    postmaster: address.optional(),
    /** Where abuse@ of every local domain goes (default: postmaster). */
    abuse: address.optional(),
    subaddressDelimiter: z.string().max(8).default("+"),
    aliases: z
      .strictObject({
        files: z.array(z.string().min(1)).default([]),
        map: aliasMapSchema.optional(),
      })
      .prefault({}),
    lookups: z.array(lookupSchema).default([]),
    srs: srsSchema.optional(),
    limits: z
      .strictObject({
        maxAddresses: z.number().int().min(1).max(100_000).default(1_000),
        maxDepth: z.number().int().min(1).max(100).default(20),
      })
      .prefault({}),
    routes: z.strictObject({ mailbox: routeName.default("local"), forward: routeName.default("forward") }).prefault({}),
    relay: z
      .strictObject({
        networks: z.array(network).default([]),
        authenticated: z.boolean().default(true),
      })
      .prefault({}),
  })
  .transform((options, context) => {
    const domains = new Set(options.domains);
    const listed: string[] = [];
    const everyUser = new Set<string>();
    for (const [index, entry] of (options.mailboxes ?? []).entries()) {
      const parsed = parseAddress(entry);
      if (parsed.kind !== "mailbox" || !domains.has(parsed.domain)) {
        context.addIssue({
          code: "custom",
          path: ["mailboxes", index],
          message: `expected "user@domain" or "*@domain" with a domain listed in domains (${[...domains].join(", ") || "none"})`,
        });
        return z.NEVER;
      }
      if (parsed.localPart === "*") everyUser.add(parsed.domain);
      else listed.push(entry);
    }
    const lookups = [
      ...(listed.length > 0 ? [{ type: "mailboxes" as const, mailboxes: listed }] : []),
      ...options.lookups,
    ];
    // Without a word on who exists (no mailboxes, no lookups), every local part of every local
    // domain is a mailbox, as before the directory: the embedded default accepts any user. The
    // plugin says so once at setup; "*@domain" in mailboxes says it on purpose and is quiet.
    const anyLocalPartByDefault = options.mailboxes === undefined && options.lookups.length === 0;
    if (anyLocalPartByDefault) for (const name of domains) everyUser.add(name);
    const { mailboxes: _mailboxes, ...rest } = options;
    return { ...rest, domains, lookups, everyUser, anyLocalPartByDefault };
  });

export type RecipientsOptions = z.input<typeof recipientsOptionsSchema>;
export type ResolvedRecipientsOptions = z.output<typeof recipientsOptionsSchema>;
export type LookupOptions = ResolvedRecipientsOptions["lookups"][number];
