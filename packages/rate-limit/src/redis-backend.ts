// Counters shared by every node through Redis. Windowed counts are rate-limiter-flexible's Redis
// limiter (one atomic Lua increment per count). Concurrent connections are a hash per key with one
// field per node, changed by the Lua scripts below, so that a node that dies holding slots does not
// hold them forever: each node refreshes a heartbeat key, and taking a slot ignores (and removes)
// the fields of nodes whose heartbeat expired.
//
// Redis calls fail fast while Redis is unreachable (no offline queue) and are bounded by a command
// timeout, so a hook never waits on a dead Redis. A slot whose release did not reach Redis is
// remembered and written again (as this node's exact count) once Redis answers.
import { randomUUID } from "node:crypto";
import type { Logger } from "@postern/core";
import { Redis } from "ioredis";
import { RateLimiterRedis } from "rate-limiter-flexible";
import type { Backend, ConnectionGauge } from "./backend.ts";
import { limiterCounter } from "./memory-backend.ts";
import type { ResolvedRedisOptions, ResolvedRule } from "./options.ts";

const heartbeatMs = 10_000;
const heartbeatTtlSeconds = 30;
/** A gauge hash nobody touched for this long is dropped (slots of sessions that outlive it are simply forgotten). */
const gaugeTtlSeconds = 86_400;

// KEYS[1] gauge hash; ARGV: node id, max slots, hash TTL, heartbeat key prefix.
// Returns {1, total} when a slot was taken, {0, total} when all were taken.
const acquireScript = `
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local node = fields[i]
  if node == ARGV[1] or redis.call('EXISTS', ARGV[4] .. node) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], node)
  end
end
if total >= tonumber(ARGV[2]) then
  return {0, total}
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, total + 1}
`;

// KEYS[1] gauge hash; ARGV: node id. A field at zero or below is removed (the hash goes with its last field).
const releaseScript = `
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return left
`;

// KEYS[1] gauge hash; ARGV: node id, this node's exact count, hash TTL.
const syncScript = `
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
`;

interface GaugeCommands {
  posternGaugeAcquire(
    key: string,
    node: string,
    max: number,
    ttl: number,
    nodePrefix: string,
  ): Promise<[number, number]>;
  posternGaugeRelease(key: string, node: string): Promise<number>;
  posternGaugeSync(key: string, node: string, count: number, ttl: number): Promise<number>;
}

/** Where node heartbeats live; "~" cannot start a rule name, so no counter shares this prefix. */
export function heartbeatPrefix(keyPrefix: string): string {
  return `${keyPrefix}:~node:`;
}

export function redisBackend(options: ResolvedRedisOptions): Backend {
  const ownsClient = options.client === undefined;
  const client =
    options.client ??
    new Redis(options.url, {
      lazyConnect: true,
      // Fail at once while disconnected instead of queueing: a hook must not wait for a reconnect.
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(options.timeoutMs, 2000),
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
  client.defineCommand("posternGaugeAcquire", { numberOfKeys: 1, lua: acquireScript });
  client.defineCommand("posternGaugeRelease", { numberOfKeys: 1, lua: releaseScript });
  client.defineCommand("posternGaugeSync", { numberOfKeys: 1, lua: syncScript });
  const commands = client as unknown as GaugeCommands;

  const node = randomUUID();
  const nodePrefix = heartbeatPrefix(options.keyPrefix);
  /** Slots this node holds per gauge hash key: the truth the Redis field is synced to. */
  const held = new Map<string, number>();
  /** Gauge keys whose Redis field may differ from `held` (a call failed or timed out). */
  const dirty = new Set<string>();
  /** Gauge keys with a call in flight; they are synced once it settles. */
  const busy = new Map<string, number>();
  let heartbeat: NodeJS.Timeout | undefined;
  let log: Logger | undefined;
  let connectedOnce = false;

  const track = async <T>(key: string, call: () => Promise<T>): Promise<T> => {
    busy.set(key, (busy.get(key) ?? 0) + 1);
    try {
      return await call();
    } catch (error) {
      dirty.add(key);
      throw error;
    } finally {
      const left = (busy.get(key) ?? 1) - 1;
      if (left > 0) busy.set(key, left);
      else busy.delete(key);
    }
  };

  const sync = async () => {
    if (client.status !== "ready") return;
    for (const key of [...dirty]) {
      if (busy.has(key)) continue;
      dirty.delete(key);
      try {
        await commands.posternGaugeSync(key, node, held.get(key) ?? 0, gaugeTtlSeconds);
      } catch {
        dirty.add(key);
        return;
      }
    }
  };

  const beat = async () => {
    if (client.status !== "ready") return;
    try {
      await client.set(`${nodePrefix}${node}`, "1", "EX", heartbeatTtlSeconds);
      await sync();
    } catch {
      // The next beat tries again; requests report the outage.
    }
  };

  client.on("ready", () => {
    if (connectedOnce) {
      // Redis may have restarted empty or pruned this node: write back every slot held.
      for (const key of held.keys()) dirty.add(key);
      log?.info({ backend: "redis" }, "rate-limit: Redis is reachable again");
    }
    connectedOnce = true;
    void beat();
  });
  // Without a listener ioredis would crash the process on a connection error.
  client.on("error", () => undefined);

  const gauge = (rule: ResolvedRule): ConnectionGauge => {
    const prefix = `${options.keyPrefix}:${rule.name}:`;
    return {
      acquire(key) {
        const full = prefix + key;
        return track(full, async () => {
          const [taken] = await commands.posternGaugeAcquire(full, node, rule.count, gaugeTtlSeconds, nodePrefix);
          if (taken !== 1) return false;
          held.set(full, (held.get(full) ?? 0) + 1);
          return true;
        });
      },
      release(key) {
        const full = prefix + key;
        const count = (held.get(full) ?? 0) - 1;
        if (count > 0) held.set(full, count);
        else held.delete(full);
        return track(full, async () => {
          await commands.posternGaugeRelease(full, node);
        });
      },
    };
  };

  return {
    kind: "redis",
    counter(rule) {
      return limiterCounter(
        new RateLimiterRedis({
          storeClient: client,
          points: rule.count,
          duration: rule.windowSeconds ?? 0,
          keyPrefix: `${options.keyPrefix}:${rule.name}`,
          rejectIfRedisNotReady: true,
        }),
      );
    },
    gauge,
    async open(logger) {
      log = logger;
      heartbeat = setInterval(() => void beat(), heartbeatMs);
      heartbeat.unref();
      if (!ownsClient) {
        if (client.status === "ready") await beat();
        return;
      }
      try {
        await client.connect();
      } catch (error) {
        logger.warn(
          { err: error, backend: "redis" },
          `rate-limit: cannot reach Redis at ${redactUrl(options.url)}; limits follow onError "${options.onError}" until it answers`,
        );
      }
    },
    async ping() {
      // Rejects at once while disconnected (no offline queue), so /readyz does not wait.
      await client.ping();
    },
    async close() {
      clearInterval(heartbeat);
      await sync();
      if (client.status === "ready" && dirty.size === 0) {
        await client.del(`${nodePrefix}${node}`).catch(() => undefined);
      }
      if (ownsClient) client.disconnect();
    },
  };
}

/** The URL without its password, for logs. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*):[^@/]*@/, "//$1:***@");
}
