// The Redis store runs the shared conformance suite against the real Redis at REDIS_URL (under a
// key prefix of its own), and shows what only Redis does: several nodes share one state, and every
// key expires on its own.
import { createLogger } from "@postern/core";
import { deleteRedisKeys, sharedRedisUrl, uniqueRedisPrefix } from "@postern/testing";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { redactUrl, redisStore } from "./redis-store.ts";
import { describeGreylistStoreConformance } from "./testing/store-conformance.ts";

const filePrefix = uniqueRedisPrefix("greylist:store");
afterAll(async () => {
  await deleteRedisKeys(filePrefix);
});

let run = 0;
describeGreylistStoreConformance("redis", async () => {
  const keyPrefix = `${filePrefix}:${++run}`;
  const store = redisStore({ url: sharedRedisUrl, keyPrefix });
  return {
    store,
    async cleanup() {
      await store.close?.();
      await deleteRedisKeys(keyPrefix);
    },
  };
});

const silent = createLogger({ level: "silent" });
const timings = { delayMs: 300_000, retryWindowMs: 172_800_000, passedForMs: 3_110_400_000, autoAllowAfter: 5 };

describe("redis store", () => {
  it("is shared: a first attempt seen by one node passes its retry on another", async () => {
    const keyPrefix = `${filePrefix}:shared`;
    const [nodeA, nodeB] = [
      redisStore({ url: sharedRedisUrl, keyPrefix }),
      redisStore({ url: sharedRedisUrl, keyPrefix }),
    ];
    await nodeA.open?.(silent);
    await nodeB.open?.(silent);
    try {
      const triplet = { triplet: "shared-triplet", network: "203.0.113.0/24" };
      expect(await nodeA.check({ ...triplet, now: 1_000_000 }, timings)).toMatchObject({ kind: "defer", why: "new" });
      expect(await nodeB.check({ ...triplet, now: 1_000_000 + 300_000 }, timings)).toMatchObject({
        kind: "pass",
        why: "retried",
      });
      expect(await nodeA.check({ ...triplet, now: 1_000_000 + 400_000 }, timings)).toMatchObject({
        kind: "pass",
        why: "known",
      });
    } finally {
      await nodeA.close?.();
      await nodeB.close?.();
    }
  });

  it("gives every key a TTL: a first attempt's is the retry window, a passed triplet's and a network's passedFor", async () => {
    const keyPrefix = `${filePrefix}:ttl`;
    const store = redisStore({ url: sharedRedisUrl, keyPrefix });
    const redis = new Redis(sharedRedisUrl);
    await store.open?.(silent);
    try {
      const network = "192.0.2.0/24";
      const now = Date.now();
      await store.check({ triplet: "first", network, now }, timings);
      const tripletKey = `${keyPrefix}:{${network}}:t:first`;
      const firstTtl = await redis.pttl(tripletKey);
      expect(firstTtl).toBeGreaterThan(timings.retryWindowMs - 60_000);
      expect(firstTtl).toBeLessThanOrEqual(timings.retryWindowMs);
      await store.check({ triplet: "first", network, now: now + timings.delayMs }, timings);
      expect(await redis.pttl(tripletKey)).toBeGreaterThan(timings.retryWindowMs);
      expect(await redis.pttl(`${keyPrefix}:{${network}}:n`)).toBeGreaterThan(timings.passedForMs - 60_000);
      // Nothing without a TTL under the prefix.
      const keys = await redis.keys(`${keyPrefix}:*`);
      expect(keys.length).toBe(2);
      for (const key of keys) expect(await redis.pttl(key)).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
      await store.close?.();
    }
  });

  it("keeps addresses out of key names", async () => {
    const keyPrefix = `${filePrefix}:names`;
    const store = redisStore({ url: sharedRedisUrl, keyPrefix });
    const redis = new Redis(sharedRedisUrl);
    await store.open?.(silent);
    try {
      await store.check({ triplet: "hashed-key", network: "192.0.2.0/24", now: Date.now() }, timings);
      expect(await redis.keys(`${keyPrefix}:*`)).toEqual([`${keyPrefix}:{192.0.2.0/24}:t:hashed-key`]);
    } finally {
      redis.disconnect();
      await store.close?.();
    }
  });

  it("fails with a coded error when Redis is not there, fast", async () => {
    const store = redisStore({ url: "redis://127.0.0.1:9", timeoutMs: 500 });
    await store.open?.(silent);
    const started = Date.now();
    await expect(store.check({ triplet: "x", network: "n", now: 0 }, timings)).rejects.toMatchObject({
      code: "POSTERN_GREYLIST_STORE_FAILED",
      message: expect.stringMatching(/^Redis at redis:\/\/127\.0\.0\.1:9: /),
    });
    expect(Date.now() - started).toBeLessThan(2000);
    await store.close?.();
  });

  it("never shows a password in log lines", () => {
    expect(redactUrl("redis://:s3cret@redis.internal:6379/2")).toBe("redis://***@redis.internal:6379/2");
    expect(redactUrl("rediss://user:s3cret@redis.internal")).toBe("rediss://***@redis.internal");
    expect(redactUrl("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
  });
});
