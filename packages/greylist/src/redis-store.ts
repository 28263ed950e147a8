// Greylisting state in Redis, shared by every node. One Lua script makes the whole decision for a
// triplet atomically (the same rules as the memory store), so two nodes that see one retry at the
// same moment count it once. Every key expires on its own (PEXPIRE): a first attempt after the
// retry window, a passed triplet or an allowlisted network after `passedFor` without traffic.
// Expiry is also written into each hash in the caller's time and checked by the script, so a
// decision never depends on whether Redis has got round to deleting a key (nor on its clock).
//
// Both keys of a check carry the network as a hash tag ({…}), so they share a slot in a Redis
// Cluster. Calls fail fast while Redis is unreachable (no offline queue) and are bounded by a
// command timeout, so a session never waits for a reconnect.
import type { Logger } from "@postern/core";
import { Redis } from "ioredis";
import { GreylistError } from "./errors.ts";
import type { GreylistDecision, GreylistStore, GreylistTimings, TripletCheck } from "./store.ts";

// KEYS[1] triplet hash {f: first seen, p: passed at, e: expires}, KEYS[2] network hash {c: passes, e: expires}.
// ARGV: now, delay, retry window, passed-for, auto-allow-after (all ms except the last).
// Returns {why, first seen, network passes}.
const checkScript = `
local now = tonumber(ARGV[1])
local delay = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local passedFor = tonumber(ARGV[4])
local autoAllow = tonumber(ARGV[5])
local function ms(value) return string.format('%.0f', value) end
if autoAllow > 0 then
  local net = redis.call('HMGET', KEYS[2], 'c', 'e')
  if net[1] and tonumber(net[2]) >= now and tonumber(net[1]) >= autoAllow then
    redis.call('HSET', KEYS[2], 'e', ms(now + passedFor))
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
    return {'network', 0, tonumber(net[1])}
  end
end
local t = redis.call('HMGET', KEYS[1], 'f', 'p', 'e')
local live = t[1] and t[3] and tonumber(t[3]) >= now
if live and t[2] then
  redis.call('HSET', KEYS[1], 'e', ms(now + passedFor))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'known', tonumber(t[1]), 0}
end
if not live then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'f', ARGV[1], 'e', ms(now + window))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'new', now, 0}
end
local first = tonumber(t[1])
if now < first + delay then
  return {'early', first, 0}
end
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'e', ms(now + passedFor))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local passes = 0
if autoAllow > 0 then
  local net = redis.call('HMGET', KEYS[2], 'c', 'e')
  local count = 0
  if net[1] and net[2] and tonumber(net[2]) >= now then count = tonumber(net[1]) end
  passes = count + 1
  redis.call('HSET', KEYS[2], 'c', passes, 'e', ms(now + passedFor))
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {'retried', first, passes}
`;

interface CheckCommand {
  posternGreylistCheck(
    tripletKey: string,
    networkKey: string,
    now: string,
    delay: string,
    window: string,
    passedFor: string,
    autoAllow: string,
  ): Promise<[string, number | string, number | string]>;
}

export interface RedisStoreOptions {
  /** redis:// or rediss:// URL (default redis://127.0.0.1:6379). */
  url?: string;
  /** Prefix of every key (default "postern:greylist"); give each deployment its own. */
  keyPrefix?: string;
  /** The longest one check may take (default 1000 ms); past it the outage policy answers. */
  timeoutMs?: number;
  /** An ioredis client to use instead of `url`; the store will not close it. */
  client?: Redis;
}

/** The URL without a password, for log lines. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, (_, auth: string) => (auth.includes(":") ? "//***@" : `//${auth}@`));
}

export function redisStore(options: RedisStoreOptions = {}): GreylistStore {
  const url = options.url ?? "redis://127.0.0.1:6379";
  const keyPrefix = options.keyPrefix ?? "postern:greylist";
  const timeoutMs = options.timeoutMs ?? 1000;
  const ownsClient = options.client === undefined;
  const client =
    options.client ??
    new Redis(url, {
      lazyConnect: true,
      // Fail at once while disconnected instead of queueing: a session must not wait for a reconnect.
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 0,
      commandTimeout: timeoutMs,
      connectTimeout: Math.max(timeoutMs, 2000),
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
  client.defineCommand("posternGreylistCheck", { numberOfKeys: 2, lua: checkScript });
  const commands = client as unknown as CheckCommand;
  // Without a listener ioredis would crash the process on a connection error.
  client.on("error", () => undefined);
  const where = options.client ? "redis (a client given)" : redactUrl(url);

  return {
    kind: "redis",
    where,
    async ping() {
      // Rejects at once while disconnected (no offline queue), so /readyz does not wait.
      await client.ping();
    },
    async check({ triplet, network, now }: TripletCheck, timings: GreylistTimings): Promise<GreylistDecision> {
      let answer: [string, number | string, number | string];
      try {
        answer = await commands.posternGreylistCheck(
          `${keyPrefix}:{${network}}:t:${triplet}`,
          `${keyPrefix}:{${network}}:n`,
          String(now),
          String(timings.delayMs),
          String(timings.retryWindowMs),
          String(timings.passedForMs),
          String(timings.autoAllowAfter),
        );
      } catch (error) {
        const reason = client.status === "ready" ? (error as Error).message : `not connected (${client.status})`;
        throw new GreylistError("POSTERN_GREYLIST_STORE_FAILED", `Redis at ${where}: ${reason}`, { cause: error });
      }
      const [why, first, passes] = [answer[0], Number(answer[1]), Number(answer[2])];
      switch (why) {
        case "network":
          return { kind: "pass", why, networkPasses: passes };
        case "known":
          return { kind: "pass", why, firstSeen: first };
        case "retried":
          return { kind: "pass", why, firstSeen: first, networkPasses: passes };
        case "new":
        case "early":
          return { kind: "defer", why, firstSeen: first, retryAt: first + timings.delayMs };
        default:
          throw new GreylistError("POSTERN_GREYLIST_STORE_FAILED", `Redis at ${where}: unexpected answer ${why}`);
      }
    },
    async open(log: Logger) {
      if (!ownsClient || client.status !== "wait") return;
      try {
        await client.connect();
      } catch (error) {
        log.warn(
          { err: error, store: "redis" },
          `greylist: cannot reach Redis at ${where} yet (${(error as Error).message}); checks follow onStoreError until it answers`,
        );
      }
    },
    async close() {
      if (ownsClient) client.disconnect();
    },
  };
}
