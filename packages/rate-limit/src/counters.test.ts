// Reading and resetting the Redis counters of a configured plugin from outside the server, the way
// `postern rate-limit show|reset` does: a reset lifts a limit at once.
import { deleteRedisKeys, sharedRedisUrl, startTestServer, type TestServer, uniqueRedisPrefix } from "@postern/testing";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import rateLimit, { type RateLimitCounters, RateLimitKeyError, rateLimitCounters } from "./index.ts";
import { openSession, ready, redisClient, transaction } from "./support.test-util.ts";

const keyPrefix = uniqueRedisPrefix("rate-limit:counters");
let server: TestServer | undefined;
let counters: RateLimitCounters | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
  await counters?.close();
  counters = undefined;
});
afterAll(async () => {
  await deleteRedisKeys(keyPrefix);
});

const options = () =>
  ({
    limits: [
      { kind: "concurrent", limit: 5 },
      { kind: "messages", limit: "1/1h" },
      { kind: "messages", key: "senderDomain", limit: "10/1h" },
    ],
    redis: { url: sharedRedisUrl, keyPrefix, timeoutMs: 5000 },
  }) as const;

describe("rateLimitCounters", () => {
  it("shows the counters of a client and resets them, lifting the limit", async () => {
    server = await startTestServer({
      plugins: [
        rateLimit(options()),
        { name: "test:claim", hooks: { rcptTo: () => ({ kind: "accept", route: "local" }) } },
        { name: "test:store", hooks: { queue: () => ({ kind: "accept" }) } },
      ],
    });
    const client = await ready(server.port);
    expect((await transaction(client, { from: "a@Sender.Example", to: ["x@localhost"] })).data?.code).toBe(250);
    expect((await transaction(client, { to: ["x@localhost"] })).mail.code).toBe(451);

    // A separate plugin instance with the same options stands for the command's process.
    counters = rateLimitCounters(rateLimit(options()))!;
    expect(counters.store).toBe("redis");
    const found = await counters.find("ip=127.0.0.1");
    expect(found.map(({ limit, key, count, slots }) => ({ limit, key, count, slots }))).toEqual([
      { limit: "concurrent-ip", key: "ip=127.0.0.1", count: 1, slots: true },
      { limit: "messages-ip-3600s", key: "ip=127.0.0.1", count: 2, slots: false },
    ]);
    expect(found[1]!.expiresInMs).toBeGreaterThan(0);
    expect((await counters.find("senderDomain=SENDER.example")).map((state) => state.count)).toEqual([1]);

    const reset = await counters.reset("ip=127.0.0.1");
    expect(reset.map((state) => state.limit)).toEqual(["concurrent-ip", "messages-ip-3600s"]);
    expect(await counters.find("ip=127.0.0.1")).toEqual([]);
    expect((await transaction(client, { to: ["x@localhost"] })).data?.code).toBe(250);
    client.close();
    // The reset slot record does not go negative when the session that held it ends.
    await client.closed();
    const next = await openSession(server.port);
    expect(next.greeting.code).toBe(220);
    next.client.close();
  });

  it("matches an IPv6 address to its /64 counter", async () => {
    const redis = redisClient();
    try {
      await redis.set(`${keyPrefix}:messages-ip-3600s:ip=2001:db8:1:2::/64`, "3", "EX", 100);
      counters = rateLimitCounters(rateLimit(options()))!;
      const found = await counters.find("ip=2001:db8:1:2::99");
      expect(found.map(({ key, count }) => ({ key, count }))).toEqual([{ key: "ip=2001:db8:1:2::/64", count: 3 }]);
    } finally {
      redis.disconnect();
    }
  });

  it("refuses a malformed query, and says where in-memory counters are", async () => {
    counters = rateLimitCounters(rateLimit(options()))!;
    await expect(counters.find("address=192.0.2.1")).rejects.toThrow(RateLimitKeyError);
    const memory = rateLimitCounters(rateLimit({ limits: [{ kind: "messages", limit: "1/1h" }] }))!;
    expect(memory.store).toBe("memory");
    await expect(memory.find("ip=192.0.2.1")).rejects.toThrow(/memory of the running server/);
    expect(rateLimitCounters({ name: "other", hooks: {} })).toBeUndefined();
  });
});
