// The options of greylist(), validated when the config loads: one line naming the key on a mistake.
import { durationSchema, IpNetworkList, ipNetworks, normalizeDomain } from "@postern/core";
import type { Redis } from "ioredis";
import { z } from "zod";
import { clientNamePattern } from "./allowlist.ts";
import type { GreylistStore } from "./store.ts";

export interface GreylistRedisOptions {
  /** redis:// or rediss:// URL (default redis://127.0.0.1:6379). */
  url?: string;
  /** Prefix of every key (default "postern:greylist"). */
  keyPrefix?: string;
  /** The longest one check may take (default 1000 ms); past it `onStoreError` answers. */
  timeoutMs?: number;
  /** An ioredis client to use instead of `url`; the plugin will not close it. */
  client?: Redis;
}

export interface GreylistOptions {
  /** How long a first attempt must wait before its retry passes (default "5m"). A number is seconds. */
  delay?: string | number;
  /** How long a first attempt waits for its retry; later it starts over (default "2d"). */
  retryWindow?: string | number;
  /** How long a passed triplet, and an auto-allowlisted network, is remembered since last seen (default "36d"). */
  passedFor?: string | number;
  /** Passed triplets after which the client's whole network passes (default 5; 0 never). */
  autoAllowAfter?: number;
  /** The network a client counts under: IPv4 and IPv6 prefix lengths (default /24 and /64). */
  network?: { ipv4?: number; ipv6?: number };
  /** Never greylisted. */
  allow?: {
    /** Client networks: ["192.0.2.0/24", "2001:db8::/32"]. */
    networks?: string[];
    /** Envelope sender domains; each also covers its subdomains. Senders can be forged: prefer networks. */
    senderDomains?: string[];
    /** The client's reverse DNS name, forward-confirmed: "*.outbound.protection.outlook.com". */
    clientNames?: string[];
  };
  /**
   * "rcpt" (default): each new triplet is answered 451 at RCPT TO, before the message is sent.
   * "data": after the message, once every recipient was accepted (or refused) by the other
   * plugins — unknown recipients get their 550 on the first attempt — at the cost of the transfer.
   */
  stage?: "rcpt" | "data";
  /** Keep the state in Redis, shared by several nodes (otherwise in this process's memory). */
  redis?: string | GreylistRedisOptions;
  /** A store of your own (see GreylistStore), instead of memory or Redis. */
  store?: GreylistStore;
  /** The store failing: "accept" (default: mail passes ungreylisted, with a warning) or "defer" (451 4.7.1). */
  onStoreError?: "accept" | "defer";
  /** The time in ms since the epoch (default Date.now); tests move it instead of sleeping. */
  clock?: () => number;
}

// Bare numbers have always been seconds here (the README says so); strings are core's notation.
const duration = durationSchema("seconds");

const prefix = (max: number) =>
  z
    .number({ error: `expected a prefix length 0–${max}` })
    .int({ error: `expected a prefix length 0–${max}` })
    .min(0, { error: `expected a prefix length 0–${max}` })
    .max(max, { error: `expected a prefix length 0–${max}` });

const domains = z
  .array(z.string(), { error: 'expected a list of domains such as ["example.com"]' })
  .transform((texts, context): string[] => {
    const out: string[] = [];
    for (const [index, text] of texts.entries()) {
      const domain = normalizeDomain(text.replace(/^\*?\./, ""));
      if (domain === undefined) {
        context.addIssue({ code: "custom", path: [index], message: 'expected a domain such as "example.com"' });
        return z.NEVER;
      }
      out.push(domain);
    }
    return out;
  });

const patternHint = 'expected a host name pattern such as "*.mail.example.com"';
const clientNames = z
  .array(z.string({ error: patternHint }).regex(/^[a-z0-9*.-]+$/i, { error: patternHint }), {
    error: 'expected a list of host name patterns such as ["*.mail.example.com"]',
  })
  .transform((patterns) => patterns.map(clientNamePattern));

const redisUrlHint = 'expected a Redis URL such as "redis://127.0.0.1:6379"';
const redisUrl = z.string({ error: redisUrlHint }).regex(/^rediss?:\/\/\S+$/, { error: redisUrlHint });
const redisObject = z.strictObject({
  url: redisUrl.optional(),
  keyPrefix: z.string().min(1, { error: "expected a key prefix" }).optional(),
  timeoutMs: z.number().int().positive({ error: "expected a positive number of milliseconds" }).optional(),
  client: z
    .custom<Redis>((value) => typeof value === "object" && value !== null && "defineCommand" in value, {
      error: "expected an ioredis client",
    })
    .optional(),
});

const storeShape = z.custom<GreylistStore>(
  (value) =>
    typeof value === "object" &&
    value !== null &&
    typeof (value as GreylistStore).check === "function" &&
    typeof (value as GreylistStore).kind === "string",
  { error: "expected a greylist store { kind, where, check() } (see GreylistStore)" },
);

export const greylistOptionsSchema = z
  .strictObject({
    delay: duration.default(5 * 60_000),
    retryWindow: duration.default(2 * 86_400_000),
    passedFor: duration.default(36 * 86_400_000),
    autoAllowAfter: z
      .number({ error: "expected a number of passed triplets (0 to never allowlist a network)" })
      .int({ error: "expected a whole number of passed triplets" })
      .min(0, { error: "expected 0 or more passed triplets" })
      .default(5),
    network: z.strictObject({ ipv4: prefix(32).default(24), ipv6: prefix(128).default(64) }).prefault({}),
    allow: z
      .strictObject({
        networks: ipNetworks.default(new IpNetworkList([])),
        senderDomains: domains.default([]),
        clientNames: clientNames.default([]),
      })
      .prefault({}),
    stage: z.enum(["rcpt", "data"], { error: 'expected "rcpt" or "data"' }).default("rcpt"),
    redis: z.union([redisUrl, redisObject], { error: `${redisUrlHint}, or { url, keyPrefix, timeoutMs }` }).optional(),
    store: storeShape.optional(),
    onStoreError: z.enum(["accept", "defer"], { error: 'expected "accept" or "defer"' }).default("accept"),
    clock: z
      .custom<() => number>((value) => typeof value === "function", { error: "expected a function returning ms" })
      .default(() => Date.now),
  })
  .superRefine((options, context) => {
    if (options.redis !== undefined && options.store !== undefined) {
      context.addIssue({ code: "custom", path: ["store"], message: "expected either redis or store, not both" });
    }
    if (options.retryWindow <= options.delay) {
      context.addIssue({
        code: "custom",
        path: ["retryWindow"],
        message: "expected a retry window longer than the delay (a retry could never pass)",
      });
    }
  });

export type ResolvedGreylistOptions = z.output<typeof greylistOptionsSchema>;
