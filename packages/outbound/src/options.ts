// The plugin's options: one zod schema, so a bad option is reported as one line naming the key.
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
