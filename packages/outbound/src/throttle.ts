// Per-destination throttles: messages per minute and connections at once, by recipient domain or
// next-hop host. Message counts are rate-limiter-flexible limiters (memory, or Redis when nodes
// share them). A connection is a slot held from connect to close; in Redis each slot is a member
// of a sorted set scored with its expiry, renewed while the connection lives, so the slots of a
// node that crashed run out by themselves instead of being held for good.
import { randomUUID } from "node:crypto";
import type { Logger } from "@postern/core";
import { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import type { ResolvedOutboundOptions, ResolvedRedisOptions } from "./options.ts";

export type ThrottleRule = ResolvedOutboundOptions["throttle"][number];

/** One connection counter a new connection must take a slot of. */
export interface SlotKey {
  /** Rule name and, for per-domain/per-mx rules, the domain or host. */
  readonly id: string;
  readonly limit: number;
  readonly rule: string;
}

export interface SlotLease {
  /** Gives the slots back (once; later calls do nothing). */
  release(): void;
}

/** What the connection pool needs from the throttles. */
export interface ConnectionSlots {
  /** Takes one slot of every key, or none: undefined when one of them is full. */
  acquire(keys: readonly SlotKey[]): Promise<SlotLease | undefined>;
  /** Calls `listener` when a slot of this process is given back; returns the unsubscribe. */
  onFreed(listener: () => void): () => void;
  /** How often a waiting delivery looks again (other nodes free slots without telling us). */
  readonly pollMs: number | undefined;
  /**
   * Shared counters only: whether another node is waiting for a slot of these counters, so an
   * idle connection here should close rather than hold its slot until its idle timeout.
   */
  contested?(ids: readonly string[]): Promise<boolean>;
}

/** A message slot taken for a transaction, given back when the host never took the message. */
export interface MessageTicket {
  readonly rule: ThrottleRule;
  readonly key: string;
}

export type Admission =
  | { readonly kind: "admitted"; readonly tickets: readonly MessageTicket[] }
  | { readonly kind: "throttled"; readonly retryAfterMs: number; readonly rule: string };

/** Whether `name` fits one of the patterns ("name", "*.suffix", "*"). */
export function nameMatches(patterns: readonly string[] | undefined, name: string): boolean {
  if (patterns === undefined) return true;
  const lower = name.toLowerCase().replace(/\.$/, "");
  return patterns.some(
    (pattern) => pattern === "*" || pattern === lower || (pattern.startsWith("*.") && lower.endsWith(pattern.slice(1))),
  );
}

interface Backend {
  readonly kind: "memory" | "redis";
  /** Takes one message; undefined when allowed, else the milliseconds until one is. Throws on a store failure. */
  takeMessage(rule: ThrottleRule, key: string): Promise<number | undefined>;
  giveBackMessage(rule: ThrottleRule, key: string): Promise<void>;
  acquire(keys: readonly SlotKey[]): Promise<SlotLease | undefined>;
  readonly pollMs: number | undefined;
  contested?(ids: readonly string[]): Promise<boolean>;
  open(log: Logger): Promise<void>;
  close(): Promise<void>;
}

/** The milliseconds a limiter says to wait, from its rejection; rethrows anything else. */
async function consume(limiter: RateLimiterMemory | RateLimiterRedis, key: string): Promise<number | undefined> {
  try {
    await limiter.consume(key, 1);
    return undefined;
  } catch (error) {
    if (error instanceof RateLimiterRes) return Math.max(1, error.msBeforeNext);
    throw error;
  }
}

function memoryBackend(notify: () => void): Backend {
  const limiters = new Map<string, RateLimiterMemory>();
  const slots = new Map<string, number>();
  const limiter = (rule: ThrottleRule) => {
    let found = limiters.get(rule.name);
    if (!found) {
      found = new RateLimiterMemory({ points: rule.messagesPerMinute ?? 1, duration: 60, keyPrefix: rule.name });
      limiters.set(rule.name, found);
    }
    return found;
  };
  return {
    kind: "memory",
    pollMs: undefined,
    takeMessage: (rule, key) => consume(limiter(rule), key),
    async giveBackMessage(rule, key) {
      await limiter(rule).reward(key, 1);
    },
    async acquire(keys) {
      // JavaScript runs one thing at a time: checking then taking is atomic here.
      if (keys.some((key) => (slots.get(key.id) ?? 0) >= key.limit)) return undefined;
      for (const key of keys) slots.set(key.id, (slots.get(key.id) ?? 0) + 1);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          for (const key of keys) {
            const left = (slots.get(key.id) ?? 1) - 1;
            if (left > 0) slots.set(key.id, left);
            else slots.delete(key.id);
          }
          notify();
        },
      };
    },
    async open() {},
    async close() {},
  };
}

// KEYS: one sorted set per counter; ARGV: token, TTL ms, node, want TTL ms, then each key's
// limit. All or nothing. Redis's own clock scores the expiries, so the nodes' clocks need not
// agree. A refused node is noted in "<key>:want" for a moment: nodes holding idle connections
// under the counter give them up (see contestedScript). (The want keys are derived, not declared:
// one Redis, not a cluster.)
const acquireScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[4 + i]) then
    local want = key .. ':want'
    redis.call('ZADD', want, now + tonumber(ARGV[4]), ARGV[3])
    redis.call('PEXPIRE', want, tonumber(ARGV[4]))
    return 0
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return 1
`;

// KEYS: the counters a token holds slots of; ARGV: token, TTL ms. Only extends slots still held.
const renewScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return 1
`;

// KEYS: counters; ARGV: node. 1 when another node noted it waits for a slot of one of them.
const contestedScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, key in ipairs(KEYS) do
  local want = key .. ':want'
  redis.call('ZREMRANGEBYSCORE', want, '-inf', now)
  for _, node in ipairs(redis.call('ZRANGE', want, 0, -1)) do
    if node ~= ARGV[1] then
      return 1
    end
  end
end
return 0
`;

interface SlotCommands {
  posternSlotAcquire(...args: (string | number)[]): Promise<number>;
  posternSlotRenew(...args: (string | number)[]): Promise<number>;
  posternSlotContested(...args: (string | number)[]): Promise<number>;
}

/** How long a refused node counts as waiting; it notes itself again at each look (every pollMs). */
const wantTtlMs = 500;

function redisBackend(options: ResolvedRedisOptions, notify: () => void): Backend {
  const ownsClient = options.client === undefined;
  const client =
    options.client ??
    new Redis(options.url, {
      lazyConnect: true,
      // Fail at once while disconnected: a delivery must not wait for a reconnect.
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(options.timeoutMs, 2_000),
      retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    });
  client.defineCommand("posternSlotAcquire", { lua: acquireScript });
  client.defineCommand("posternSlotRenew", { lua: renewScript });
  client.defineCommand("posternSlotContested", { lua: contestedScript });
  // Without a listener ioredis would crash the process on a connection error.
  client.on("error", () => undefined);
  const commands = client as unknown as SlotCommands;
  const node = randomUUID();
  let sequence = 0;
  const limiters = new Map<string, RateLimiterRedis>();
  /** Slots this node holds: token → the Redis keys. */
  const held = new Map<string, string[]>();
  let renewTimer: NodeJS.Timeout | undefined;
  const slotKey = (id: string) => `${options.keyPrefix}:conn:${id}`;
  const limiter = (rule: ThrottleRule) => {
    let found = limiters.get(rule.name);
    if (!found) {
      found = new RateLimiterRedis({
        storeClient: client,
        points: rule.messagesPerMinute ?? 1,
        duration: 60,
        keyPrefix: `${options.keyPrefix}:msg:${rule.name}`,
        rejectIfRedisNotReady: true,
      });
      limiters.set(rule.name, found);
    }
    return found;
  };
  const releaseToken = (token: string) => {
    const keys = held.get(token);
    if (!keys) return;
    held.delete(token);
    // A release that does not reach Redis is not lost: the slot runs out after slotTtlMs.
    for (const key of keys) client.zrem(key, token).catch(() => undefined);
    notify();
  };
  return {
    kind: "redis",
    pollMs: 100,
    takeMessage: (rule, key) => consume(limiter(rule), key),
    async giveBackMessage(rule, key) {
      await limiter(rule).reward(key, 1);
    },
    async acquire(keys) {
      const token = `${node}:${++sequence}`;
      const redisKeys = keys.map((key) => slotKey(key.id));
      const taken = await commands.posternSlotAcquire(
        redisKeys.length,
        ...redisKeys,
        token,
        options.slotTtlMs,
        node,
        wantTtlMs,
        ...keys.map((key) => key.limit),
      );
      if (taken !== 1) return undefined;
      held.set(token, redisKeys);
      return { release: () => releaseToken(token) };
    },
    async contested(ids) {
      const redisKeys = ids.map(slotKey);
      return (await commands.posternSlotContested(redisKeys.length, ...redisKeys, node)) === 1;
    },
    async open(log) {
      renewTimer = setInterval(
        () => {
          for (const [token, keys] of held) {
            commands
              .posternSlotRenew(keys.length, ...keys, token, options.slotTtlMs)
              .catch((error: Error) =>
                log.warn({ err: error.message }, "outbound throttle: renewing connection slots in Redis failed"),
              );
          }
        },
        Math.max(50, Math.floor(options.slotTtlMs / 3)),
      );
      renewTimer.unref();
      if (!ownsClient) return;
      try {
        await client.connect();
      } catch (error) {
        log.warn(
          { err: (error as Error).message },
          `outbound throttle: cannot reach Redis; throttled destinations follow onError "${options.onError}" until it answers`,
        );
      }
    },
    async close() {
      clearInterval(renewTimer);
      // Connections still closing give their slots back now, while Redis is still connected.
      await Promise.allSettled([...held].flatMap(([token, keys]) => keys.map((key) => client.zrem(key, token))));
      held.clear();
      if (ownsClient) client.disconnect();
    },
  };
}

export interface ThrottleOptions {
  rules: readonly ThrottleRule[];
  redis: ResolvedRedisOptions | undefined;
  log: Logger;
}

/** How long mail to a throttled destination waits when Redis cannot say (onError "defer"). */
const outageRetryMs = 5_000;

export class Throttle implements ConnectionSlots {
  readonly #rules: readonly ThrottleRule[];
  readonly #backend: Backend;
  readonly #log: Logger;
  readonly #onError: "allow" | "defer";
  readonly #listeners = new Set<() => void>();

  constructor(options: ThrottleOptions) {
    this.#rules = options.rules;
    this.#log = options.log;
    this.#onError = options.redis?.onError ?? "defer";
    const notify = () => {
      for (const listener of [...this.#listeners]) listener();
    };
    this.#backend = options.redis ? redisBackend(options.redis, notify) : memoryBackend(notify);
  }

  #lastOutageLog = 0;

  /** A Redis outage is logged once per 10 s, not at every look of every waiting delivery. */
  #outage(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.#lastOutageLog < 10_000) return;
    this.#lastOutageLog = now;
    this.#log.warn(fields, message);
  }

  get pollMs(): number | undefined {
    return this.#backend.pollMs;
  }

  get kind(): "memory" | "redis" {
    return this.#backend.kind;
  }

  open(): Promise<void> {
    return this.#backend.open(this.#log);
  }

  close(): Promise<void> {
    return this.#backend.close();
  }

  #matching(domain: string, host: string): { rule: ThrottleRule; key: string }[] {
    const out: { rule: ThrottleRule; key: string }[] = [];
    for (const rule of this.#rules) {
      if (!nameMatches(rule.match.domain, domain) || !nameMatches(rule.match.mx, host)) continue;
      const key = rule.per === "domain" ? domain : rule.per === "mx" ? host.toLowerCase() : "";
      out.push({ rule, key });
    }
    return out;
  }

  /** The connection counters a new connection to `host` for mail to `domain` takes a slot of. */
  connectionKeys(domain: string, host: string): SlotKey[] {
    return this.#matching(domain, host)
      .filter(({ rule }) => rule.connections !== undefined)
      .map(({ rule, key }) => ({
        id: key ? `${rule.name}|${key}` : rule.name,
        limit: rule.connections!,
        rule: rule.name,
      }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /**
   * Takes one message of every messagesPerMinute rule for `domain` at `host`, or none: throttled
   * with the wait the fullest rule asks for.
   */
  async admitMessage(domain: string, host: string): Promise<Admission> {
    const tickets: MessageTicket[] = [];
    for (const { rule, key } of this.#matching(domain, host)) {
      if (rule.messagesPerMinute === undefined) continue;
      let wait: number | undefined;
      try {
        wait = await this.#backend.takeMessage(rule, key);
      } catch (error) {
        if (this.#onError === "allow") {
          this.#outage(
            { err: (error as Error).message, rule: rule.name },
            "outbound throttle: Redis failed; not counted",
          );
          continue;
        }
        this.#outage({ err: (error as Error).message, rule: rule.name }, "outbound throttle: Redis failed; mail waits");
        wait = outageRetryMs;
      }
      if (wait !== undefined) {
        await this.giveBack(tickets);
        return { kind: "throttled", retryAfterMs: wait, rule: rule.name };
      }
      tickets.push({ rule, key });
    }
    return { kind: "admitted", tickets };
  }

  /** Gives messages back: the host never took the message they were taken for. */
  async giveBack(tickets: readonly MessageTicket[]): Promise<void> {
    for (const { rule, key } of tickets) {
      await this.#backend.giveBackMessage(rule, key).catch(() => undefined);
    }
  }

  async acquire(keys: readonly SlotKey[]): Promise<SlotLease | undefined> {
    try {
      return await this.#backend.acquire(keys);
    } catch (error) {
      if (this.#onError === "allow") {
        this.#outage({ err: (error as Error).message }, "outbound throttle: Redis failed; connection not counted");
        return { release() {} };
      }
      this.#outage({ err: (error as Error).message }, "outbound throttle: Redis failed; connection waits");
      return undefined;
    }
  }

  get contested(): ((ids: readonly string[]) => Promise<boolean>) | undefined {
    const backend = this.#backend;
    if (!backend.contested) return undefined;
    return (ids) => backend.contested!(ids).catch(() => false);
  }

  onFreed(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
