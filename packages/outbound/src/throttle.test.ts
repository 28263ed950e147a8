// Per-destination throttles over real SMTP: mail accepted by Postern for relay goes to smtp-server
// sinks on 127.0.17.x, which the fake DNS zone names as MX hosts. Throttled mail must wait in the
// queue (no attempt counted, never bounced); connection limits are counted at the sink's sockets;
// the Redis variant runs two outbound nodes against the real Redis at REDIS_URL.
import { randomBytes } from "node:crypto";
import { ConfigError } from "@postern/core";
import { buildMessage, type FakeDns, startFakeDns } from "@postern/testing";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import outbound from "./index.ts";
import type { QueuedMessage } from "./queue/store.ts";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.17";
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
let dns: FakeDns;
const harnesses: OutboundHarness[] = [];
const sinks: MxSink[] = [];
let redis: Redis;
const prefixes: string[] = [];

beforeAll(async () => {
  dns = await startFakeDns({
    "rate.test": { MX: ["10 mx.rate.test"] },
    "mx.rate.test": { A: [`${net}.2`] },
    // Six domains on one provider's MX host: one message to all of them is six deliveries at once.
    ...Object.fromEntries(
      Array.from({ length: 6 }, (_, n) => [`d${n}.hosted.test`, { MX: ["10 mx1.provider.test"] }] as const),
    ),
    "mx1.provider.test": { A: [`${net}.3`] },
  });
  redis = new Redis(redisUrl, { lazyConnect: true });
  await redis.connect();
});
afterEach(async () => {
  for (const harness of harnesses.splice(0)) await harness.stop();
  for (const sink of sinks.splice(0)) await sink.close();
});
afterAll(async () => {
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
  await dns.close();
});

/** A key prefix of its own for each Redis test, so runs never share counters. */
function redisPrefix(): string {
  const prefix = `postern:test:outbound-throttle:${randomBytes(4).toString("hex")}`;
  prefixes.push(prefix);
  return prefix;
}

async function sink(host: string): Promise<MxSink> {
  const started = await startSink({ host });
  sinks.push(started);
  return started;
}

async function start(...args: Parameters<typeof startOutbound>): Promise<OutboundHarness> {
  const harness = await startOutbound(...args);
  harnesses.push(harness);
  return harness;
}

const hostedRecipients = Array.from({ length: 6 }, (_, n) => `user@d${n}.hosted.test`);

/** Queued messages whose recipients all wait, unattempted, for a throttle (due later than `after`). */
function postponed(messages: readonly QueuedMessage[], after: number): QueuedMessage[] {
  return messages.filter((message) =>
    message.recipients.every(
      (recipient) => recipient.state === "queued" && recipient.attempts === 0 && recipient.nextAttemptAt > after,
    ),
  );
}

async function throttledCount(harness: OutboundHarness, limit: "messages" | "connections"): Promise<number> {
  const metric = await harness.plugin.metrics.getSingleMetric("postern_outbound_throttled_total")?.get();
  return (metric?.values ?? [])
    .filter((value) => value.labels.limit === limit)
    .reduce((sum, value) => sum + value.value, 0);
}

describe("messages per minute", () => {
  it("lets N messages through a minute and keeps the rest queued, unattempted and unbounced", async () => {
    const mx = await sink(`${net}.2`);
    const harness = await start(dns, {
      port: mx.port,
      throttle: [{ match: { domain: "rate.test" }, messagesPerMinute: 3 }],
    });
    const ids: string[] = [];
    for (let n = 0; n < 5; n++) {
      const sent = await harness.server.send({
        from: "sender@origin.test",
        to: `user${n}@rate.test`,
        raw: buildMessage({ subject: `rate ${n}`, to: `user${n}@rate.test` }),
      });
      ids.push(/queued as (\S+)/.exec(sent.response)![1]!);
    }
    // Three delivered; the other two back in the queue for the rest of the minute.
    await expect
      .poll(async () => postponed(await harness.plugin.store.list(), Date.now() + 10_000).length, { timeout: 15_000 })
      .toBe(2);
    await expect.poll(() => harness.events.count("delivered"), { timeout: 15_000 }).toBe(3);
    expect(mx.messages).toHaveLength(3);
    const left = await harness.plugin.store.list();
    expect(left).toHaveLength(2);
    for (const message of left) {
      expect(ids).toContain(message.id);
      const [recipient] = message.recipients;
      expect(recipient).toMatchObject({ state: "queued", attempts: 0 });
      // Due again when the minute's window ends, not after a retry backoff.
      expect(recipient!.nextAttemptAt).toBeLessThanOrEqual(Date.now() + 66_000);
      expect(recipient!.lastReply).toBeUndefined();
    }
    expect(harness.events.count("bounced")).toBe(0);
    expect(harness.events.count("deferred")).toBe(0);
    expect(await throttledCount(harness, "messages")).toBe(2);
  });

  it("counts per domain with per: domain", async () => {
    const mx = await sink(`${net}.3`);
    const harness = await start(dns, {
      port: mx.port,
      throttle: [{ match: { mx: "*.provider.test" }, per: "domain", messagesPerMinute: 1 }],
    });
    // Two messages to each of two domains: one of each goes, one of each waits.
    for (let n = 0; n < 2; n++) {
      await harness.server.send({
        from: "sender@origin.test",
        to: ["a@d0.hosted.test", "a@d1.hosted.test"],
        raw: buildMessage({ subject: `per domain ${n}`, to: "a@d0.hosted.test" }),
      });
    }
    await expect.poll(() => harness.events.count("delivered"), { timeout: 15_000 }).toBe(2);
    await expect.poll(() => throttledCount(harness, "messages"), { timeout: 15_000 }).toBe(2);
    const delivered = harness.events.events.map((entry) => entry.event.recipient.domain).sort();
    expect(delivered).toEqual(["d0.hosted.test", "d1.hosted.test"]);
    expect(harness.events.count("bounced")).toBe(0);
  });
});

describe("connections at once", () => {
  it("without a limit, one message to six domains on one host opens several connections at once", async () => {
    // The control for the next test: the same load does open parallel connections.
    const mx = await sink(`${net}.3`);
    const harness = await start(dns, { port: mx.port });
    await harness.server.send({ from: "sender@origin.test", to: hostedRecipients, raw: buildMessage() });
    await expect.poll(() => harness.events.count("delivered"), { timeout: 15_000 }).toBe(6);
    expect(mx.maxOpen).toBeGreaterThan(1);
  });

  it("a limit of 1 never has two connections open to the host; waiting deliveries take the one handed back", async () => {
    const mx = await sink(`${net}.3`);
    const harness = await start(dns, {
      port: mx.port,
      throttle: [{ match: { mx: "mx1.provider.test" }, connections: 1 }],
    });
    await harness.server.send({ from: "sender@origin.test", to: hostedRecipients, raw: buildMessage() });
    await expect.poll(() => harness.events.count("delivered"), { timeout: 15_000 }).toBe(6);
    expect(mx.messages).toHaveLength(6);
    expect(mx.maxOpen).toBe(1);
    expect(mx.connections).toBe(1);
  });

  it("a delivery that waits past slotWaitMs goes back to the queue without an attempt", async () => {
    const mx = await sink(`${net}.3`);
    const harness = await start(dns, {
      port: mx.port,
      throttle: [{ match: { domain: "*.hosted.test" }, connections: 1 }],
      connections: { slotWaitMs: 0, reuse: false },
    });
    await harness.server.send({ from: "sender@origin.test", to: hostedRecipients, raw: buildMessage() });
    await expect.poll(() => harness.events.count("delivered"), { timeout: 15_000 }).toBe(6);
    expect(mx.maxOpen).toBe(1);
    expect(await throttledCount(harness, "connections")).toBeGreaterThan(0);
    // Each was delivered on its first real attempt, however often it was held back before.
    for (const { event } of harness.events.events) expect(event.attempts).toBe(1);
    expect(harness.events.count("deferred")).toBe(0);
  });
});

describe("shared through Redis", () => {
  it("two nodes together send no more messages a minute than the limit", async () => {
    const mx = await sink(`${net}.2`);
    const shared = {
      port: mx.port,
      throttle: [{ match: { domain: "rate.test" }, messagesPerMinute: 3 }],
      redis: { url: redisUrl, keyPrefix: redisPrefix() },
    };
    const one = await start(dns, shared);
    const two = await start(dns, shared);
    for (let n = 0; n < 3; n++) {
      for (const node of [one, two]) {
        await node.server.send({
          from: "sender@origin.test",
          to: `user${n}@rate.test`,
          raw: buildMessage({ subject: `shared ${n}` }),
        });
      }
    }
    const waiting = async () =>
      postponed([...(await one.plugin.store.list()), ...(await two.plugin.store.list())], Date.now() + 10_000).length;
    await expect.poll(waiting, { timeout: 15_000 }).toBe(3);
    await expect.poll(() => one.events.count("delivered") + two.events.count("delivered"), { timeout: 15_000 }).toBe(3);
    expect(mx.messages).toHaveLength(3);
    expect(one.events.count("bounced") + two.events.count("bounced")).toBe(0);
  });

  it("two nodes together never open more connections than the limit", async () => {
    const mx = await sink(`${net}.3`);
    const shared = {
      port: mx.port,
      throttle: [{ match: { mx: "*.provider.test" }, connections: 1 }],
      redis: { url: redisUrl, keyPrefix: redisPrefix() },
      connections: { slotWaitMs: 200 },
    };
    const one = await start(dns, shared);
    const two = await start(dns, shared);
    await Promise.all(
      [one, two].map((node) =>
        node.server.send({ from: "sender@origin.test", to: hostedRecipients, raw: buildMessage() }),
      ),
    );
    await expect
      .poll(() => one.events.count("delivered") + two.events.count("delivered"), { timeout: 18_000 })
      .toBe(12);
    expect(mx.messages).toHaveLength(12);
    expect(mx.maxOpen).toBe(1);
    for (const { event } of [...one.events.events, ...two.events.events]) expect(event.attempts).toBe(1);
  });

  it("slots of a node that stopped renewing them run out; a live one's hold", async () => {
    const mx = await sink(`${net}.3`);
    const keyPrefix = redisPrefix();
    const rule = { match: { mx: "mx1.provider.test" }, connections: 1, name: "provider" };
    const slots = `${keyPrefix}:conn:provider`;
    const [seconds, micros] = await redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    // A live node holds the only slot: the delivery waits in the queue, unattempted.
    await redis.zadd(slots, now + 60_000, "live-node:1");
    const harness = await start(dns, {
      port: mx.port,
      throttle: [rule],
      redis: { url: redisUrl, keyPrefix },
      connections: { slotWaitMs: 100 },
    });
    await harness.server.send({ from: "sender@origin.test", to: "user@d0.hosted.test", raw: buildMessage() });
    await expect.poll(() => throttledCount(harness, "connections"), { timeout: 15_000 }).toBeGreaterThan(0);
    const [waiting] = await harness.plugin.store.list();
    expect(waiting!.recipients[0]).toMatchObject({ state: "queued", attempts: 0 });
    expect(mx.connections).toBe(0);
    // That node crashed long ago: its slot's expiry has passed, so the slot is free again.
    await redis.zadd(slots, now - 1, "live-node:1");
    await harness.events.wait("delivered");
    expect(mx.messages).toHaveLength(1);
    // The connection's own slot is given back when its socket closes.
    await harness.stop();
    harnesses.splice(harnesses.indexOf(harness), 1);
    await expect.poll(() => redis.zcard(slots), { timeout: 10_000 }).toBe(0);
  });
});

describe("when Redis does not answer", () => {
  // Nothing listens on port 1 of loopback: every Redis call fails at once.
  const unreachable = "redis://127.0.0.1:1";

  it('onError "defer" (the default): throttled mail waits in the queue, unattempted', async () => {
    const mx = await sink(`${net}.2`);
    const harness = await start(dns, {
      port: mx.port,
      throttle: [{ match: { domain: "rate.test" }, messagesPerMinute: 100 }],
      redis: unreachable,
    });
    await harness.server.send({ from: "sender@origin.test", to: "user@rate.test", raw: buildMessage() });
    await expect
      .poll(async () => postponed(await harness.plugin.store.list(), Date.now()).length, { timeout: 15_000 })
      .toBe(1);
    expect(mx.messages).toHaveLength(0);
    expect(harness.events.count("deferred") + harness.events.count("bounced")).toBe(0);
  });

  it('onError "allow": mail goes out without the shared count', async () => {
    const mx = await sink(`${net}.3`);
    const harness = await start(dns, {
      port: mx.port,
      throttle: [{ match: { mx: "*.provider.test" }, messagesPerMinute: 100, connections: 1 }],
      redis: { url: unreachable, onError: "allow" },
    });
    await harness.server.send({ from: "sender@origin.test", to: "user@d0.hosted.test", raw: buildMessage() });
    await harness.events.wait("delivered");
    expect(mx.messages).toHaveLength(1);
  });
});

describe("options", () => {
  const error = (options: Parameters<typeof outbound>[0]) => {
    try {
      outbound(options);
    } catch (caught) {
      expect(caught).toBeInstanceOf(ConfigError);
      return (caught as Error).message;
    }
    throw new Error("no error");
  };

  it("reports a bad throttle or Redis option in one line naming the key", () => {
    const messages = [
      error({ throttle: [{ match: {}, connections: 1 }] }),
      error({ throttle: [{ match: { domain: "gmail.com" } }] }),
      error({ throttle: [{ match: { domain: "gmail.com" }, messagesPerMinute: 0 }] }),
      error({ throttle: [{ match: { mx: "bad name!" }, connections: 2 }] }),
      error({ throttle: [{ match: { domain: "a.test" }, per: "host" as "mx", connections: 2 }] }),
      error({
        throttle: [
          { match: { domain: "a.test" }, connections: 2 },
          { match: { domain: "a.test" }, messagesPerMinute: 2 },
        ],
      }),
      error({ redis: "localhost:6379" }),
    ];
    for (const message of messages) expect(message).not.toContain("\n");
    expect(messages[0]).toMatch(/^@postern\/outbound\.throttle\.0\.match: expected domain or mx/);
    expect(messages[1]).toMatch(/^@postern\/outbound\.throttle\.0: expected messagesPerMinute or connections/);
    expect(messages[2]).toMatch(/^@postern\/outbound\.throttle\.0\.messagesPerMinute: /);
    expect(messages[3]).toMatch(/^@postern\/outbound\.throttle\.0\.match\.mx: expected a name such as "example\.com"/);
    expect(messages[4]).toMatch(/^@postern\/outbound\.throttle\.0\.per: expected "rule", "domain" or "mx"/);
    expect(messages[5]).toMatch(/^@postern\/outbound\.throttle\.1\.name: expected a unique name/);
    expect(messages[6]).toMatch(/^@postern\/outbound\.redis: expected a Redis URL/);
  });
});
