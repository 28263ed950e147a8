// Greylisting through Redis over real SMTP: two server nodes share one state (a first attempt on
// one, its retry on the other), and a Redis outage follows onStoreError. Outages use a redis-server
// of this test's own, which it kills; the shared Redis only ever sees keys under this file's prefix.

import {
  claimRecipients,
  connectSmtp,
  deleteRedisKeys,
  eventually,
  isReady,
  memoryQueue,
  type RedisServer,
  sharedRedisUrl,
  startRedisServer,
  startTestServer,
  type TestServer,
  uniqueRedisPrefix,
} from "@postern/testing";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import greylist, { type GreylistOptions } from "./index.ts";

const filePrefix = uniqueRedisPrefix("greylist:smtp");
const servers: TestServer[] = [];
let ownRedis: RedisServer | undefined;

afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop();
  await ownRedis?.stop();
  ownRedis = undefined;
});
afterAll(async () => {
  await deleteRedisKeys(filePrefix);
});

const minute = 60_000;
let now = Date.UTC(2026, 5, 1, 9, 0, 0);
const clock = () => now;

async function node(options: GreylistOptions): Promise<TestServer> {
  const server = await startTestServer({
    plugins: [greylist({ clock, ...options }), claimRecipients(), memoryQueue().plugin],
    config: { listeners: [{ address: "127.0.0.1", port: 1, proxy: ["127.0.0.1"] }] },
  });
  servers.push(server);
  return server;
}

/** MAIL and RCPT from `client` through PROXY; the RCPT reply's code. */
async function rcptCode(port: number, client: string, to = "user@localhost"): Promise<number> {
  const smtp = await connectSmtp(port);
  try {
    smtp.write(`PROXY TCP4 ${client} 127.0.0.1 40000 25\r\n`);
    await smtp.read();
    await smtp.command("EHLO client.test");
    await smtp.command("MAIL FROM:<sender@example.org>");
    return (await smtp.command(`RCPT TO:<${to}>`)).code;
  } finally {
    smtp.close();
  }
}

const storeWarnings = (server: TestServer) =>
  server.logs.filter((record) => record.plugin === "@postern/greylist" && record.level >= 40);

describe("greylisting shared through Redis", () => {
  it("two nodes share one state: the first attempt on one, its retry passes on the other", async () => {
    const redis = { url: sharedRedisUrl, keyPrefix: `${filePrefix}:nodes` };
    const [nodeA, nodeB] = [await node({ redis }), await node({ redis })];
    expect(await rcptCode(nodeA.port, "192.0.2.10")).toBe(451);
    now += 2 * minute;
    expect(await rcptCode(nodeB.port, "192.0.2.10")).toBe(451);
    now += 3 * minute;
    expect(await rcptCode(nodeB.port, "192.0.2.10")).toBe(250);
    expect(await rcptCode(nodeA.port, "192.0.2.10")).toBe(250);
  });
});

describe("a Redis outage", () => {
  it('default "accept": mail passes ungreylisted with one warning, and greylisting resumes when Redis is back', async () => {
    ownRedis = await startRedisServer();
    const server = await node({ redis: { url: ownRedis.url, keyPrefix: "outage", timeoutMs: 500 } });
    expect(await rcptCode(server.port, "192.0.2.10")).toBe(451);

    await ownRedis.kill();
    expect(await rcptCode(server.port, "198.51.100.1")).toBe(250);
    expect(await rcptCode(server.port, "198.51.100.2")).toBe(250);
    const warnings = storeWarnings(server);
    // One warning for the outage, not one per message.
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      code: "POSTERN_GREYLIST_STORE_FAILED",
      policy: "accept",
      msg: expect.stringMatching(
        new RegExp(`^greylist: Redis at ${ownRedis.url}: .+; mail passes without greylisting until it answers$`),
      ),
    });

    // Back (empty): new triplets are greylisted again, and the log says how many checks were skipped.
    await ownRedis.restart();
    await eventually(async () => (await rcptCode(server.port, "203.0.113.9")) === 451);
    expect(server.logs.map((record) => record.msg)).toContainEqual(
      expect.stringMatching(
        /^greylist: the redis store at redis:\/\/127\.0\.0\.1:\d+ answers again; \d+ checks were skipped meanwhile$/,
      ),
    );
  });

  it('"defer": 451 4.7.1 while Redis is down', async () => {
    ownRedis = await startRedisServer();
    const server = await node({
      redis: { url: ownRedis.url, keyPrefix: "outage", timeoutMs: 500 },
      onStoreError: "defer",
    });
    await ownRedis.kill();
    const smtp = await connectSmtp(server.port);
    try {
      smtp.write("PROXY TCP4 198.51.100.1 127.0.0.1 40000 25\r\n");
      await smtp.read();
      await smtp.command("EHLO client.test");
      await smtp.command("MAIL FROM:<sender@example.org>");
      const reply = await smtp.command("RCPT TO:<user@localhost>");
      expect([reply.code, reply.enhanced, reply.text]).toEqual([
        451,
        "4.7.1",
        "4.7.1 Greylisting unavailable, try again later",
      ]);
    } finally {
      smtp.close();
    }
  });

  it("is not ready while Redis is down with onStoreError defer; with accept it is", async () => {
    ownRedis = await startRedisServer();
    const redis = { url: ownRedis.url, keyPrefix: "ready", timeoutMs: 500 };
    const deferring = greylist({ clock, redis, onStoreError: "defer" });
    const accepting = greylist({ clock, redis, onStoreError: "accept" });
    servers.push(await startTestServer({ plugins: [deferring] }), await startTestServer({ plugins: [accepting] }));
    await eventually(() => isReady(deferring));
    await ownRedis.kill();
    await eventually(async () => !(await isReady(deferring)));
    await expect(accepting.ready()).resolves.toBeUndefined();
  });

  it("a Redis that is not there at start does not stop the server; it says so at start", async () => {
    ownRedis = await startRedisServer();
    const url = ownRedis.url;
    await ownRedis.kill();
    const server = await node({ redis: { url, keyPrefix: "outage", timeoutMs: 500 } });
    expect(await rcptCode(server.port, "198.51.100.1")).toBe(250);
    expect(server.logs.map((record) => record.msg)).toContainEqual(
      expect.stringMatching(
        /^greylist: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ yet \(.+\); checks follow onStoreError until it answers$/,
      ),
    );
  });
});
