// The Redis counters of a configured rateLimit() plugin, for operators: which limits hold a client,
// user or domain, and lifting them (`postern rate-limit show|reset`). Works from a separate
// process, with the plugin's own Redis settings; in-memory counters are out of reach by nature.
import type { Plugin } from "@postern/core";
import { PosternError } from "@postern/core";
import { Redis } from "ioredis";
import { keyNames, type ResolvedOptions } from "./options.ts";
import { heartbeatPrefix } from "./redis-backend.ts";
import { normalizeKeyPart } from "./rule-keys.ts";

export interface CounterState {
  /** The rule's name ("messages-ip-3600s"). */
  limit: string;
  /** The counter key ("ip=192.0.2.1", "user=alice|recipientDomain=example.org"). */
  key: string;
  /** Counted so far in the window, or slots held for concurrent connections. */
  count: number;
  /** Time until the window ends (or the slot record expires); undefined when it does not expire. */
  expiresInMs: number | undefined;
  /** A concurrent-connection record (slots) rather than a windowed count. */
  slots: boolean;
}

export interface RateLimitCounters {
  /** Where the plugin keeps its counters; only "redis" counters can be read from another process. */
  readonly store: "memory" | "redis";
  /** Counters whose key has every part of `query` ("ip=192.0.2.1", "user=alice|recipientDomain=x"). */
  find(query: string): Promise<CounterState[]>;
  /** Deletes what find() would return, lifting those limits at once; returns what was deleted. */
  reset(query: string): Promise<CounterState[]>;
  close(): Promise<void>;
}

/** A query that is not a counter key ("address=…", "ip=not-an-ip"). */
export class RateLimitKeyError extends PosternError {
  declare readonly code: "POSTERN_RATE_LIMIT_BAD_KEY";

  constructor(message: string) {
    super("POSTERN_RATE_LIMIT_BAD_KEY", message, { plugin: "@postern/rate-limit" });
  }
}

const configured = new WeakMap<Plugin, ResolvedOptions>();

/** Called by the factory: remembers the resolved options of each plugin it made. */
export function rememberOptions(plugin: Plugin, options: ResolvedOptions): void {
  configured.set(plugin, options);
}

/** A query as key parts normalized like the counters' keys; throws a RateLimitKeyError when invalid. */
function parseQuery(query: string, options: ResolvedOptions): string[] {
  return query.split("|").map((part) => {
    const normalized = normalizeKeyPart(part.trim(), options.prefixes, keyNames);
    if (normalized === undefined) {
      throw new RateLimitKeyError(
        `"${part}" is not a key part: expected name=value with a name among ${keyNames.join(", ")}, e.g. ip=192.0.2.1`,
      );
    }
    return normalized;
  });
}

/** The counters of `plugin` (made by rateLimit()), or undefined for any other plugin. */
export function rateLimitCounters(plugin: Plugin): RateLimitCounters | undefined {
  const options = configured.get(plugin);
  if (!options) return undefined;
  const redisOptions = options.redis;
  if (!redisOptions) {
    const unreachable = async (): Promise<never> => {
      throw new Error("the counters are kept in the memory of the running server; configure redis to share them");
    };
    return { store: "memory", find: unreachable, reset: unreachable, async close() {} };
  }
  const ownsClient = redisOptions.client === undefined;
  const client =
    redisOptions.client ??
    new Redis(redisOptions.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on("error", () => undefined);
  const prefix = `${redisOptions.keyPrefix}:`;
  const heartbeats = heartbeatPrefix(redisOptions.keyPrefix);

  const find = async (query: string): Promise<CounterState[]> => {
    const wanted = parseQuery(query, options);
    if (ownsClient && client.status === "wait") await client.connect();
    const matches: { redisKey: string; limit: string; key: string }[] = [];
    let cursor = "0";
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      for (const redisKey of keys) {
        if (redisKey.startsWith(heartbeats)) continue;
        const rest = redisKey.slice(prefix.length);
        const colon = rest.indexOf(":");
        if (colon < 1) continue;
        const key = rest.slice(colon + 1);
        const parts = key.split("|");
        if (wanted.every((part) => parts.includes(part))) matches.push({ redisKey, limit: rest.slice(0, colon), key });
      }
    } while (cursor !== "0");
    const states: CounterState[] = [];
    for (const match of matches) {
      const type = await client.type(match.redisKey);
      const ttl = await client.pttl(match.redisKey);
      if (type === "none") continue;
      const slots = type === "hash";
      const count = slots
        ? (await client.hvals(match.redisKey)).reduce((sum, value) => sum + Number(value), 0)
        : Number(await client.get(match.redisKey));
      states.push({ limit: match.limit, key: match.key, count, expiresInMs: ttl >= 0 ? ttl : undefined, slots });
    }
    return states.sort((a, b) => a.limit.localeCompare(b.limit) || a.key.localeCompare(b.key));
  };

  return {
    store: "redis",
    find,
    async reset(query) {
      const states = await find(query);
      if (states.length > 0) await client.del(...states.map((state) => `${prefix}${state.limit}:${state.key}`));
      return states;
    },
    async close() {
      if (ownsClient) client.disconnect();
    },
  };
}
