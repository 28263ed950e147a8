// The options of the recipient directory, validated with zod (one-line errors through core's
// parseOptions), and their resolved form: normalized domains, checked addresses, defaults filled.
import { z } from "zod";
import { aliasMapSchema } from "./alias-map.ts";
import { normalizeDomain } from "./domain-name.ts";
import { parseMailAddress } from "./mail-address.ts";

const domain = z.string().transform((value, context) => {
  const normalized = normalizeDomain(value);
  if (normalized === undefined) {
    context.addIssue({ code: "custom", message: 'expected a domain name such as "example.com"' });
    return z.NEVER;
  }
  return normalized;
});

const address = z.string().refine((value) => parseMailAddress(value) !== undefined, {
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
  });

export const directoryOptionsSchema = z
  .strictObject({
    domains: z.array(domain, { error: 'expected a list of local domains, e.g. ["example.com"]' }).min(1),
    /** Where postmaster@ of every local domain (and the bare postmaster) goes. */
    postmaster: address,
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
    routes: z
      .strictObject({ mailbox: z.string().min(1).default("local"), forward: z.string().min(1).default("forward") })
      .prefault({}),
  })
  .refine(
    (value) =>
      value.srs === undefined ||
      value.srs.hashMinLength === undefined ||
      value.srs.hashMinLength <= value.srs.hashLength,
    {
      message: "expected hashMinLength ≤ hashLength",
      path: ["srs", "hashMinLength"],
    },
  );

export type DirectoryOptions = z.input<typeof directoryOptionsSchema>;
export type ResolvedDirectoryOptions = z.output<typeof directoryOptionsSchema>;
export type LookupOptions = ResolvedDirectoryOptions["lookups"][number];
