// A concurrent-connection slot is given back however the connection ends: QUIT, a reset from the
// client, the idle timeout, a failed STARTTLS handshake, and server shutdown. Each test holds the
// only slot, shows that a second client is refused, ends the first, and waits for a client to get in.
import {
  createTestCertificate,
  deleteRedisKeys,
  eventually,
  sharedRedisUrl,
  startTestServer,
  type TestCertificate,
  type TestServer,
  uniqueRedisPrefix,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import rateLimit, { type RateLimitOptions } from "./index.ts";
import { openSession, redisClient } from "./support.test-util.ts";

const filePrefix = uniqueRedisPrefix("rate-limit:release");
let runs = 0;
let certificate: TestCertificate;
const servers: TestServer[] = [];

beforeAll(async () => {
  certificate = await createTestCertificate();
});
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop();
});
afterAll(async () => {
  await deleteRedisKeys(filePrefix);
});

const backends: { name: string; options: () => Partial<RateLimitOptions> }[] = [
  { name: "memory", options: () => ({}) },
  {
    name: "redis",
    options: () => ({ redis: { url: sharedRedisUrl, keyPrefix: `${filePrefix}:${++runs}`, timeoutMs: 5000 } }),
  },
];

type ListenerOverrides = { tls?: "starttls"; socketTimeoutMs?: number };

async function start(backendOptions: Partial<RateLimitOptions>, listener: ListenerOverrides = {}) {
  const server = await startTestServer({
    plugins: [rateLimit({ limits: [{ kind: "concurrent", limit: 1 }], ...backendOptions })],
    config: {
      listeners: [
        {
          address: "127.0.0.1",
          port: 1,
          ...listener,
          ...(listener.tls ? { certificate: certificate.certificate, key: certificate.key } : {}),
        },
      ],
    },
  });
  servers.push(server);
  return server;
}

/** Holds the only slot, and shows that it is held. */
async function holdSlot(port: number) {
  const holder = await openSession(port);
  expect(holder.greeting.code).toBe(220);
  const refused = await openSession(port);
  expect(refused.greeting.code).toBe(421);
  await refused.client.closed();
  return holder.client;
}

/** Waits until a new client is greeted with 220 (the slot was given back). */
async function slotFreed(port: number) {
  await eventually(async () => {
    const probe = await openSession(port);
    probe.client.close();
    return probe.greeting.code === 220;
  });
}

describe.each(backends)("concurrent slots with the $name backend are given back", ({ options }) => {
  it("on QUIT", async () => {
    const server = await start(options());
    const holder = await holdSlot(server.port);
    expect((await holder.command("QUIT")).code).toBe(221);
    await holder.closed();
    await slotFreed(server.port);
  });

  it("when the client resets the connection", async () => {
    const server = await start(options());
    const holder = await holdSlot(server.port);
    holder.socket.resetAndDestroy();
    await slotFreed(server.port);
  });

  it("when the session times out", async () => {
    const server = await start(options(), { socketTimeoutMs: 1500 });
    const holder = await holdSlot(server.port);
    const timedOut = await holder.read(15_000);
    expect(timedOut.code).toBe(421);
    await holder.closed();
    await slotFreed(server.port);
  });

  it("when the STARTTLS handshake fails", async () => {
    const server = await start(options(), { tls: "starttls" });
    const holder = await holdSlot(server.port);
    expect((await holder.command("EHLO client.test")).code).toBe(250);
    expect((await holder.command("STARTTLS")).code).toBe(220);
    holder.write("this is not a TLS ClientHello\r\n\r\n");
    await holder.closed();
    await slotFreed(server.port);
  });
});

describe("concurrent slots in Redis are given back at server shutdown", () => {
  it("the stopping node leaves no slot behind, and the other node admits a client", async () => {
    const keyPrefix = `${filePrefix}:shutdown`;
    const shared = { redis: { url: sharedRedisUrl, keyPrefix, timeoutMs: 5000 } };
    const first = await start(shared);
    const second = await start(shared);
    const holder = await openSession(first.port);
    expect(holder.greeting.code).toBe(220);
    const refused = await openSession(second.port);
    expect(refused.greeting.code).toBe(421);
    const redis = redisClient();
    try {
      const gaugeKey = `${keyPrefix}:concurrent-ip:ip=127.0.0.1`;
      expect(Object.values(await redis.hgetall(gaugeKey))).toEqual(["1"]);
      await first.server.stop();
      servers.splice(servers.indexOf(first), 1);
      // Released by the stopping node itself, not pruned later by the other one.
      expect(await redis.hgetall(gaugeKey)).toEqual({});
      await holder.client.closed();
      await slotFreed(second.port);
    } finally {
      redis.disconnect();
    }
  });
});
