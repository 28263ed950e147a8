// The plugin's options: one zod schema, so a bad option is reported as one line naming the key.
import { isIP } from "node:net";
import type { Redis } from "ioredis";
import type { Registry } from "prom-client";
import { z } from "zod";
import type { OutboundHookHandlers } from "./delivery-hooks.ts";
import type { QueueStore } from "./queue/store.ts";
import type { MessageSigner } from "./signer.ts";

const port = z.number({ error: "expected a port number 1–65535" }).int().min(1).max(65535);
const duration = z.number({ error: "expected a duration in milliseconds" }).int().min(0);

/**
 * How much TLS a connection needs:
 * - "none": never STARTTLS;
 * - "opportunistic": STARTTLS when offered, any certificate; plaintext if the handshake fails;
 * - "encrypt": STARTTLS required, any certificate;
 * - "verify": STARTTLS required and the certificate must be valid for the host name.
 */
export const tlsLevelSchema = z.enum(["none", "opportunistic", "encrypt", "verify"]);
export type TlsLevel = z.output<typeof tlsLevelSchema>;

export const relayTargetSchema = z.object({
  /** Host name or IP address of the next hop. */
  host: z.string().min(1),
  port: port.default(25),
  /** Implicit TLS from the first byte (port 465 style) instead of STARTTLS. */
  secure: z.boolean().default(false),
  /** Defaults to "verify" when `auth` is set (credentials never travel unverified), else the global level. */
  tls: tlsLevelSchema.optional(),
  auth: z.object({ user: z.string().min(1), pass: z.string() }).optional(),
});
export type RelayTarget = z.output<typeof relayTargetSchema>;
export type RelayTargetInput = z.input<typeof relayTargetSchema>;

const pem = z.union([z.string().min(1), z.array(z.string().min(1))]);

const storeSchema = z.union([
  z.object({
    type: z.literal("fs"),
    /** Spool directory (created when missing). */
    dir: z.string().min(1).default("./data/queue"),
  }),
  z.object({
    type: z.literal("postgres"),
    /** Defaults to $DATABASE_URL. */
    connectionString: z.string().optional(),
    /** One schema per cluster; every node of the cluster names the same one. */
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: "expected a lower-case SQL identifier" })
      .default("postern_outbound"),
    maxConnections: z.number().int().positive().default(10),
    /** Bytes per stored body chunk row: the most of one message a node holds at once. */
    chunkSize: z
      .number()
      .int()
      .min(4096, { error: "expected a chunk size from 4096 to 67108864 bytes" })
      .max(64 * 1024 * 1024, { error: "expected a chunk size from 4096 to 67108864 bytes" })
      .default(256 * 1024),
  }),
  z.object({
    type: z.literal("custom"),
    store: z.custom<QueueStore>(
      (value) => typeof value === "object" && value !== null && typeof (value as QueueStore).claim === "function",
      { error: "expected an object implementing QueueStore" },
    ),
  }),
]);

/**
 * A domain or host name pattern: "example.com" (that name), "*.example.com" (names under it, not
 * itself) or "*" (every name). Lower-cased, a trailing dot dropped.
 */
const namePattern = z
  .string({ error: 'expected a name such as "example.com", "*.example.com" or "*"' })
  .transform((value) => value.trim().toLowerCase().replace(/\.$/, ""))
  .refine((value) => /^(?:\*|(?:\*\.)?[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f.:]+\])$/.test(value), {
    error: 'expected a name such as "example.com", "*.example.com" or "*"',
  });
const namePatterns = z
  .union([namePattern, z.array(namePattern).min(1)], {
    error: 'expected a name pattern or a list of them, e.g. "gmail.com" or ["*.google.com"]',
  })
  .transform((value) => (Array.isArray(value) ? value : [value]));

const counterName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { error: "expected a name of letters, digits, '.', '_' or '-'" });

/**
 * One per-destination throttle. `match.domain` is the recipient domain, `match.mx` the next hop's
 * host name (an MX host, or the host of a static route or smarthost); with both, both must match.
 */
export const throttleRuleSchema = z
  .strictObject({
    match: z
      .strictObject({ domain: namePatterns.optional(), mx: namePatterns.optional() })
      .refine((match) => match.domain !== undefined || match.mx !== undefined, {
        error: "expected domain or mx (or both) to match",
      }),
    /** Messages (SMTP transactions) started per minute. */
    messagesPerMinute: z.number({ error: "expected a whole number of messages per minute" }).int().min(1).optional(),
    /** Connections open at once (idle pooled ones included). */
    connections: z.number({ error: "expected a whole number of connections at once" }).int().min(1).optional(),
    /**
     * What one counter covers: "rule" (everything the rule matches together, the default),
     * "domain" (each recipient domain on its own), "mx" (each next-hop host on its own).
     */
    per: z.enum(["rule", "domain", "mx"], { error: 'expected "rule", "domain" or "mx"' }).default("rule"),
    /** Names the counter (Redis keys, logs, metrics); derived from `match` when not given. */
    name: counterName.optional(),
  })
  .refine((rule) => rule.messagesPerMinute !== undefined || rule.connections !== undefined, {
    error: "expected messagesPerMinute or connections (or both)",
  });
export type ThrottleRuleInput = z.input<typeof throttleRuleSchema>;

/** A stable counter name from what the rule matches, e.g. "domain=gmail.com,mx=*.google.com/rule". */
function defaultThrottleName(rule: z.output<typeof throttleRuleSchema>): string {
  const parts = [
    ...(rule.match.domain ? [`domain=${rule.match.domain.join("+")}`] : []),
    ...(rule.match.mx ? [`mx=${rule.match.mx.join("+")}`] : []),
  ];
  return `${parts.join(",")}/${rule.per}`;
}

const redisObjectSchema = z.strictObject({
  url: z
    .string()
    .regex(/^rediss?:\/\/\S+$/, { error: 'expected a Redis URL such as "redis://127.0.0.1:6379"' })
    .default("redis://127.0.0.1:6379"),
  /** An ioredis client to use instead of `url`; the plugin does not close it. */
  client: z
    .custom<Redis>((value) => typeof value === "object" && value !== null && "defineCommand" in value, {
      error: "expected an ioredis client",
    })
    .optional(),
  /** Prefix of every key written; nodes sharing limits name the same one. */
  keyPrefix: z.string().min(1).default("postern:outbound"),
  /** Longest wait for one Redis call. */
  timeoutMs: z.number().int().min(10).max(30_000, { error: "expected milliseconds 10–30000" }).default(1_000),
  /** A node that stops renewing its connection slots (it crashed) loses them after this long. */
  slotTtlMs: z.number().int().min(100, { error: "expected milliseconds, at least 100" }).default(30_000),
  /**
   * When Redis fails: "defer" treats the destination as throttled (the mail waits, the default),
   * "allow" delivers without the shared limit and logs a warning.
   */
  onError: z.enum(["allow", "defer"], { error: 'expected "allow" or "defer"' }).default("defer"),
});

const redisSchema = z.union(
  [
    z
      .string()
      .regex(/^rediss?:\/\/\S+$/, { error: 'expected a Redis URL such as "redis://127.0.0.1:6379"' })
      .transform((url) => redisObjectSchema.parse({ url })),
    redisObjectSchema,
  ],
  { error: "expected a Redis URL or { url, keyPrefix, timeoutMs, slotTtlMs, onError }" },
);
export type ResolvedRedisOptions = z.output<typeof redisObjectSchema>;

const sourceAddressSchema = z.union(
  [
    z.string(),
    z.strictObject({
      address: z.string({ error: "expected an IP address" }),
      /** EHLO name sent from this address; the plugin's heloName when not given. */
      ehlo: z
        .string()
        .regex(/^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f.:]+\])$/, {
          error: 'expected a host name such as "out2.example.org"',
        })
        .optional(),
    }),
  ],
  { error: "expected an IP address or { address, ehlo }" },
);

/** A pool of source addresses for the mail it matches; the first matching pool is used. */
export const sourcePoolSchema = z.strictObject({
  match: z
    .strictObject({
      /** The envelope sender's domain (the null sender matches only pools without this). */
      senderDomain: namePatterns.optional(),
      /** The recipient domain. */
      domain: namePatterns.optional(),
      /** The next hop's host name (MX host, or a static route's or smarthost's host). */
      mx: namePatterns.optional(),
    })
    .prefault({}),
  /** Addresses of this host to connect from, used in turn; each may carry its own EHLO name. */
  addresses: z
    .array(sourceAddressSchema, { error: "expected a list of IP addresses" })
    .min(1, { error: "expected at least one address" })
    .transform((list, context) => {
      const out: { address: string; ehlo: string | undefined }[] = [];
      for (const [index, entry] of list.entries()) {
        const address = typeof entry === "string" ? entry : entry.address;
        if (isIP(address) === 0) {
          context.addIssue({
            code: "custom",
            path: typeof entry === "string" ? [index] : [index, "address"],
            message: "expected an IP address such as 192.0.2.10 or 2001:db8::25",
          });
          return z.NEVER;
        }
        out.push({ address, ehlo: typeof entry === "string" ? undefined : entry.ehlo });
      }
      return out;
    }),
});
export type SourcePoolInput = z.input<typeof sourcePoolSchema>;

export const outboundOptionsSchema = z.object({
  /** Recipient routes (set by rcptTo plugins) whose mail this plugin queues and delivers. */
  queueRoutes: z.array(z.string().min(1)).min(1).default(["relay"]),
  queue: storeSchema.default({ type: "fs", dir: "./data/queue" }),
  /** Port of MX hosts (25; tests point it elsewhere). */
  port: port.default(25),
  /** Send all mail through this host instead of looking up MX records. */
  smarthost: relayTargetSchema.optional(),
  /** Static next hops per recipient domain (lower-case); they take precedence over `smarthost`. */
  routes: z.record(z.string(), relayTargetSchema).default({}),
  /** Name sent with EHLO; the server's hostname by default. */
  heloName: z.string().min(1).optional(),
  /**
   * Per-destination throttles: messages per minute and connections at once, by recipient domain
   * or next-hop host. Every matching rule applies. A throttled delivery waits in the queue without
   * counting as an attempt.
   */
  throttle: z
    .array(throttleRuleSchema, { error: "expected a list of throttle rules" })
    .default([])
    .transform((rules, context) => {
      const named: (z.output<typeof throttleRuleSchema> & { name: string })[] = [];
      const seen = new Map<string, number>();
      for (const [index, rule] of rules.entries()) {
        const name = rule.name ?? defaultThrottleName(rule);
        const earlier = seen.get(name);
        if (earlier !== undefined) {
          context.addIssue({
            code: "custom",
            path: [index, "name"],
            message: `expected a unique name: throttle.${earlier} already counts as "${name}"; give one of them a name`,
          });
          return z.NEVER;
        }
        seen.set(name, index);
        named.push({ ...rule, name });
      }
      return named;
    }),
  /** Share throttle counters among nodes through Redis; without it they live in this process. */
  redis: redisSchema.optional(),
  /** Source address pools: the address to connect from and the EHLO name, per sender or destination. */
  sources: z.array(sourcePoolSchema, { error: "expected a list of source pools" }).default([]),
  tls: z
    .object({
      level: tlsLevelSchema.default("opportunistic"),
      /** Per recipient domain, e.g. { "bank.example": "verify" }; the stricter of this and `level` applies. */
      domains: z.record(z.string(), tlsLevelSchema).default({}),
      /** Extra trusted CA certificates (PEM text) for "verify", added to Node's default set. */
      ca: pem.optional(),
    })
    .prefault({}),
  mtaSts: z
    .object({
      enabled: z.boolean().default(true),
      /** Deadline for fetching a policy over HTTPS. */
      timeoutMs: duration.default(15_000),
      /** How long a looked-up policy is used before DNS is asked again whether it changed. */
      recheckMs: duration.default(5 * 60_000),
    })
    .prefault({}),
  dane: z
    .object({
      /**
       * A DNSSEC-validating resolver ("127.0.0.1:53") whose AD bit is trusted: DANE (RFC 7672)
       * applies to MX routes when set. Run it on this host (the path to it must be secure).
       */
      resolver: z
        .string()
        .regex(/^(?:\[[0-9a-fA-F:]+\]|[0-9.]+|[0-9a-fA-F:]+)(?::\d{1,5})?$/, {
          error: 'expected an IP address with an optional port, e.g. "127.0.0.1:53"',
        })
        .optional(),
      /** Deadline of one query to it. */
      timeoutMs: duration.default(5_000),
    })
    .prefault({}),
  concurrency: z
    .object({
      /** Deliveries (one message to one domain) running at once, in this process. */
      total: z.number().int().positive().default(20),
      /** Deliveries to one recipient domain running at once. */
      perDomain: z.number().int().positive().default(5),
    })
    .prefault({}),
  connections: z
    .object({
      /** Keep connections open and send further messages over them. */
      reuse: z.boolean().default(true),
      /** Messages over one connection before it is closed. */
      maxMessages: z.number().int().positive().default(100),
      /** How long an idle connection is kept for the next message. */
      idleTimeoutMs: duration.default(5_000),
      connectTimeoutMs: duration.default(30_000),
      greetingTimeoutMs: duration.default(30_000),
      /** Inactivity during a session (the DATA reply of a large message can take a while). */
      socketTimeoutMs: duration.default(300_000),
      /**
       * How long a delivery waits for a connection under a throttle's `connections` limit (a
       * free slot, or a connection another delivery hands back) before it goes back to the queue
       * for as long again.
       */
      slotWaitMs: duration.default(5_000),
    })
    .prefault({}),
  /** RCPT TO commands per transaction; more recipients for one domain go in further transactions. */
  maxRecipientsPerTransaction: z.number().int().positive().default(100),
  /** MX hosts tried per delivery attempt. */
  maxMxHosts: z.number().int().positive().default(5),
  retry: z
    .object({
      /** Delay after the first failure; doubled (by `factor`) after each further one. */
      initialDelayMs: duration.default(5 * 60_000),
      maxDelayMs: duration.default(60 * 60_000),
      factor: z.number().min(1).default(2),
      /** Each delay is shortened by up to this fraction at random, so retries spread out. */
      jitter: z.number().min(0).max(1).default(0.2),
      /** After this long in the queue a temporary failure becomes a bounce. */
      maxAgeMs: duration.default(5 * 24 * 3_600_000),
    })
    .prefault({}),
  bounces: z
    .object({
      /** Local part of the From: address of delivery reports (the domain is the server's hostname). */
      from: z.string().min(1).default("MAILER-DAEMON"),
      /** Return the whole message when it is at most this large (and RET=HDRS was not asked); else headers. */
      maxReturnedSize: z
        .number()
        .int()
        .min(0)
        .default(256 * 1024),
    })
    .prefault({}),
  dsn: z
    .object({
      /**
       * Warn the sender once when a recipient is still queued after this long (an RFC 3464
       * "delayed" report, for NOTIFY=DELAY and for recipients without NOTIFY); 0 sends none.
       */
      delayWarningMs: duration.default(4 * 3_600_000),
      /**
       * Routes whose storage is final delivery (mailboxes): a recipient there that asked for
       * NOTIFY=SUCCESS gets a "delivered" report once the message is stored.
       */
      deliveredRoutes: z.array(z.string().min(1)).default(["local"]),
    })
    .prefault({}),
  worker: z
    .object({
      /** Deliver from this node; false only queues (e.g. a node that only accepts). */
      enabled: z.boolean().default(true),
      /** Lease owner name; unique per process. Defaults to hostname:pid:random. */
      id: z.string().min(1).optional(),
      /** How often the queue is looked at when nothing woke the worker (new mail from other nodes). */
      pollIntervalMs: duration.default(1_000),
      /** A claim held longer than this without renewal goes back to the queue. */
      leaseMs: duration.default(5 * 60_000),
      /** Time to let deliveries in flight finish on shutdown before abandoning them (their leases expire). */
      shutdownTimeoutMs: duration.default(10_000),
    })
    .prefault({}),
  /**
   * The operator's delivery hooks: route, delivered, deferred, bounced (functions, or
   * { handler, order, timeoutMs }). Plugins add theirs with `handles: [outboundHooks.handlers({ … })]`.
   */
  hooks: z
    .custom<OutboundHookHandlers>((value) => typeof value === "object" && value !== null, {
      error: "expected an object of hook functions { route, delivered, deferred, bounced }",
    })
    .optional(),
  /** Signs messages before they are queued (e.g. DKIM from @postern/dkim). */
  signer: z
    .custom<MessageSigner>((value) => typeof value === "function", {
      error: "expected a function (message, envelope) => header fields to prepend",
    })
    .optional(),
  metrics: z
    .object({
      /** Register the metrics here (e.g. the app's registry); a new registry by default. */
      registry: z
        .custom<Registry>(
          (value) => typeof value === "object" && value !== null && typeof (value as Registry).metrics === "function",
          { error: "expected a prom-client Registry" },
        )
        .optional(),
      prefix: z.string().default("postern_outbound_"),
    })
    .prefault({}),
});

export type OutboundOptions = z.input<typeof outboundOptionsSchema>;
export type ResolvedOutboundOptions = z.output<typeof outboundOptionsSchema>;
