// The options of rateLimit(): what operators write (human units, key names, CIDR strings) and the
// resolved form the hooks use. Validation happens once, when the config loads; every problem is
// one ConfigError line naming the key, e.g. `@postern/rate-limit: limits.0.limit: expected …`.

import { duration, type IpNetwork, parseIpNetwork } from "@postern/core";
import type { Redis } from "ioredis";
import { z } from "zod";
import { parseByteRate, parseRate } from "./units.ts";

/** What a limit counts. */
export type LimitKind =
  | "concurrent"
  | "connections"
  | "authFailures"
  | "messages"
  | "recipients"
  | "recipientsPerMessage"
  | "bytes";

/** What a limit counts by; several together make one combined key (e.g. user + recipientDomain). */
export type KeyName = "ip" | "network" | "helo" | "sender" | "senderDomain" | "user" | "recipient" | "recipientDomain";

export interface LimitRule {
  /**
   * What to count: concurrent connections, connections / AUTH failures / messages / recipients /
   * bytes per window, or recipients per message.
   */
  kind: LimitKind;
  /** What to count by (default "ip"); an array combines keys, e.g. ["user", "recipientDomain"]. */
  key?: KeyName | readonly KeyName[];
  /**
   * "100/1h", "5/1m" for windowed kinds; "500MB/1d" for bytes; a plain number for concurrent and
   * recipientsPerMessage.
   */
  limit: number | string;
  /**
   * Only clients in these CIDR ranges are counted by this rule; with the key "network" each range
   * is one shared counter.
   */
  networks?: readonly string[];
  /** Delay before refusing ("2s", "500ms" or milliseconds); overrides the plugin-wide tarpit. */
  tarpit?: string | number;
  /** Names the counter in Redis keys and logs; needed only to tell apart two rules that would share one. */
  name?: string;
}

export interface RedisOptions {
  /** redis:// or rediss:// URL (default redis://127.0.0.1:6379). */
  url?: string;
  /** An ioredis client to use instead of `url`; the plugin will not close it. */
  client?: Redis;
  /** Prefix of every key the plugin writes (default "postern:rl"). */
  keyPrefix?: string;
  /** Longest wait for Redis in one hook, in ms (default 1000); keep it well under the hook deadline. */
  timeoutMs?: number;
  /**
   * When Redis fails or is too slow: "defer" answers 4xx (451 4.7.1, at connect 421 4.7.1), "allow"
   * lets the session through and logs a warning. Default "defer" (fail closed).
   */
  onError?: "allow" | "defer";
}

export interface RateLimitOptions {
  limits: readonly LimitRule[];
  /** IPv6 clients are counted per prefix of this length (default 64). */
  ipv6Prefix?: number;
  /** IPv4 clients are counted per prefix of this length (default 32: each address alone). */
  ipv4Prefix?: number;
  /** Clients that bypass every limit. */
  allow?: {
    /** CIDR ranges or addresses. */
    networks?: readonly string[];
    /** Authenticated user names (they bypass limits once authenticated, never AUTH failure limits). */
    users?: readonly string[];
  };
  /** Delay before every refusal, to slow down floods ("2s", "500ms" or milliseconds; default 0). */
  tarpit?: string | number;
  /** Share counters through Redis; without it counters live in this process's memory. */
  redis?: string | RedisOptions;
}

export interface ResolvedRule {
  name: string;
  kind: LimitKind;
  keys: readonly KeyName[];
  /** The limit: items (or bytes) per window, or the most at once. */
  count: number;
  /** Window length in seconds; undefined for concurrent and recipientsPerMessage. */
  windowSeconds: number | undefined;
  /** When non-empty, only clients in these networks are counted. */
  networks: readonly IpNetwork[];
  tarpitMs: number;
  /** Where the rule sits in the options, for logs ("limits.2"). */
  path: string;
}

export interface ResolvedRedisOptions {
  url: string;
  client: Redis | undefined;
  keyPrefix: string;
  timeoutMs: number;
  onError: "allow" | "defer";
}

export interface ResolvedOptions {
  rules: ResolvedRule[];
  prefixes: { ipv4: number; ipv6: number };
  allowNetworks: readonly IpNetwork[];
  allowUsers: ReadonlySet<string>;
  redis: ResolvedRedisOptions | undefined;
}

const kinds = [
  "concurrent",
  "connections",
  "authFailures",
  "messages",
  "recipients",
  "recipientsPerMessage",
  "bytes",
] as const satisfies readonly LimitKind[];

export const keyNames = [
  "ip",
  "network",
  "helo",
  "sender",
  "senderDomain",
  "user",
  "recipient",
  "recipientDomain",
] as const satisfies readonly KeyName[];

/** Keys known when each kind is counted: connection-level kinds count before HELO, AUTH before MAIL. */
const keysFor: Record<LimitKind, readonly KeyName[]> = {
  concurrent: ["ip", "network"],
  connections: ["ip", "network"],
  authFailures: ["ip", "network", "helo", "user"],
  messages: keyNames,
  recipients: keyNames,
  recipientsPerMessage: keyNames,
  bytes: keyNames,
};

const networkSchema = z.string().transform((value, context) => {
  const network = parseIpNetwork(value);
  if (network === undefined) {
    context.addIssue({
      code: "custom",
      message: 'expected an IP address or CIDR range such as "192.0.2.0/24" or "2001:db8::/32"',
    });
    return z.NEVER;
  }
  return network;
});

// Core's duration notation ("2s", "500ms", a number of ms), up to a minute, with this option's own message.
const delaySchema = z.unknown().transform((value, context) => {
  const parsed = duration.safeParse(value);
  const ms = parsed.success ? parsed.data : undefined;
  if (ms === undefined || ms > 60_000) {
    context.addIssue({ code: "custom", message: 'expected a delay up to 1 minute such as "2s", "500ms" or 2000' });
    return z.NEVER;
  }
  return ms;
});

const keyNameSchema = z.enum(keyNames, { error: `expected a key: ${keyNames.join(", ")}` });

const ruleSchema = z.strictObject({
  kind: z.enum(kinds, { error: `expected a kind: ${kinds.join(", ")}` }),
  key: z.union([keyNameSchema, z.array(keyNameSchema).min(1)]).default("ip"),
  limit: z.union([z.number(), z.string()], { error: 'expected a limit such as "100/1h" or a number' }),
  networks: z.array(networkSchema).optional(),
  tarpit: delaySchema.optional(),
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { error: "expected a name of letters, digits, '.', '_' or '-'" })
    .optional(),
});

type RuleInput = z.output<typeof ruleSchema>;

/** Parses the limit for the rule's kind; an error message when it does not fit. */
function limitOf(rule: RuleInput): { count: number; windowSeconds: number | undefined } | string {
  const { kind, limit } = rule;
  if (kind === "concurrent" || kind === "recipientsPerMessage") {
    const count = typeof limit === "string" && /^\s*\d+\s*$/.test(limit) ? Number(limit) : limit;
    if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 1) {
      return `expected a whole number of ${kind === "concurrent" ? "connections at once" : "recipients per message"}, such as 10`;
    }
    return { count, windowSeconds: undefined };
  }
  const rate = typeof limit === "string" ? (kind === "bytes" ? parseByteRate(limit) : parseRate(limit)) : undefined;
  if (!rate) {
    return kind === "bytes"
      ? 'expected bytes per window such as "500MB/1d" or "10MB/1h"'
      : 'expected a rate such as "100/1h", "5/1m" or "1000/1d"';
  }
  return rate;
}

const redisObjectSchema = z.strictObject({
  url: z.string().optional(),
  client: z
    .custom<Redis>((value) => typeof value === "object" && value !== null && "defineCommand" in value, {
      error: "expected an ioredis client",
    })
    .optional(),
  keyPrefix: z.string().min(1).default("postern:rl"),
  timeoutMs: z.number().int().min(10).max(30_000, { error: "expected milliseconds 10–30000" }).default(1000),
  onError: z.enum(["allow", "defer"], { error: 'expected "allow" or "defer"' }).default("defer"),
});

const redisUrlPattern = /^rediss?:\/\/\S+$/;
const redisUrlMessage = 'expected a Redis URL such as "redis://127.0.0.1:6379"';

// A URL string or an options object; parsed by hand so each form reports its own precise error
// (a zod union would only say "Invalid input").
const redisSchema = z.unknown().transform((value, context): ResolvedRedisOptions | typeof z.NEVER => {
  if (typeof value === "string") {
    if (!redisUrlPattern.test(value)) {
      context.addIssue({ code: "custom", message: redisUrlMessage });
      return z.NEVER;
    }
    return { url: value, client: undefined, keyPrefix: "postern:rl", timeoutMs: 1000, onError: "defer" };
  }
  const parsed = redisObjectSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const message =
      issue.path.length === 0 && issue.code === "invalid_type"
        ? "expected a Redis URL or { url, keyPrefix, timeoutMs, onError }"
        : issue.message;
    context.addIssue({ code: "custom", path: issue.path as (string | number)[], message });
    return z.NEVER;
  }
  const url = parsed.data.url ?? "redis://127.0.0.1:6379";
  if (!redisUrlPattern.test(url)) {
    context.addIssue({ code: "custom", path: ["url"], message: redisUrlMessage });
    return z.NEVER;
  }
  return { ...parsed.data, client: parsed.data.client, url };
});

export const rateLimitOptionsSchema = z
  .strictObject({
    limits: z
      .array(ruleSchema, { error: "expected a list of limits" })
      .min(1, { error: "expected at least one limit" }),
    ipv6Prefix: z.number().int().min(1).max(128, { error: "expected a prefix length 1–128" }).default(64),
    ipv4Prefix: z.number().int().min(1).max(32, { error: "expected a prefix length 1–32" }).default(32),
    allow: z
      .strictObject({
        networks: z.array(networkSchema).default([]),
        users: z.array(z.string().min(1)).default([]),
      })
      .prefault({}),
    tarpit: delaySchema.default(0),
    redis: redisSchema.optional(),
  })
  .transform((options, context): ResolvedOptions | typeof z.NEVER => {
    const rules: ResolvedRule[] = [];
    const names = new Map<string, number>();
    for (const [index, rule] of options.limits.entries()) {
      const at = (...path: (string | number)[]) => ["limits", index, ...path];
      const limit = limitOf(rule);
      if (typeof limit === "string") {
        context.addIssue({ code: "custom", path: at("limit"), message: limit });
        return z.NEVER;
      }
      const keys = [...new Set(Array.isArray(rule.key) ? rule.key : [rule.key])];
      const unknown = keys.find((key) => !keysFor[rule.kind].includes(key));
      if (unknown) {
        context.addIssue({
          code: "custom",
          path: at("key"),
          message: `expected a key that ${rule.kind} limits can count by: ${keysFor[rule.kind].join(", ")}`,
        });
        return z.NEVER;
      }
      if (keys.includes("network") && !rule.networks?.length) {
        context.addIssue({
          code: "custom",
          path: at("networks"),
          message: 'expected the CIDR ranges to count by, since the key is "network"',
        });
        return z.NEVER;
      }
      const window = limit.windowSeconds === undefined ? "" : `-${limit.windowSeconds}s`;
      const name = rule.name ?? `${rule.kind}-${keys.join("+")}${window}`;
      const earlier = names.get(name);
      if (earlier !== undefined) {
        context.addIssue({
          code: "custom",
          path: at("name"),
          message: `expected a unique name: limits.${earlier} already counts as "${name}"; give one of them a name`,
        });
        return z.NEVER;
      }
      names.set(name, index);
      rules.push({
        name,
        kind: rule.kind,
        keys,
        count: limit.count,
        windowSeconds: limit.windowSeconds,
        networks: rule.networks ?? [],
        tarpitMs: rule.tarpit ?? options.tarpit,
        path: `limits.${index}`,
      });
    }
    return {
      rules,
      prefixes: { ipv4: options.ipv4Prefix, ipv6: options.ipv6Prefix },
      allowNetworks: options.allow.networks,
      allowUsers: new Set(options.allow.users),
      redis: options.redis,
    };
  });
