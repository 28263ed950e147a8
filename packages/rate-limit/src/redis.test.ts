// Limits shared through Redis: two server instances enforce one limit; slots of a node that died
// are not counted; and a Redis that hangs or dies mid-test is handled by the configured policy
// ("allow" lets sessions through with a warning, "defer" answers 4.7.1) without hanging a session.
// Outages use a redis-server of this test's own; the shared Redis only sees keys under our prefix.
import {
  deleteRedisKeys,
  eventually,
  isReady,
  type RedisServer,
  sharedRedisUrl,
  startRedisServer,
  startTestServer,
  type TestServer,
  uniqueRedisPrefix,
} from "@postern/testing";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import rateLimit, { type LimitRule } from "./index.ts";
import { authPlain, openSession, ready, redisClient, transaction } from "./support.test-util.ts";

const filePrefix = uniqueRedisPrefix("rate-limit:redis");
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

async function start(
  limits: LimitRule[],
  redis: Parameters<typeof rateLimit>[0]["redis"],
  listener: { proxy?: string[]; auth?: "optional"; allowInsecureAuth?: boolean } = {},
) {
  const server = await startTestServer({
    plugins: [
      rateLimit({ limits, redis }),
      { name: "test:claim", hooks: { rcptTo: () => ({ kind: "accept", route: "local" }) } },
      { name: "test:store", hooks: { queue: () => ({ kind: "accept" }) } },
    ],
    config: { listeners: [{ address: "127.0.0.1", port: 1, ...listener }] },
  });
  servers.push(server);
  return server;
}

const proxyLine = (client: string) => `PROXY TCP4 ${client} 127.0.0.1 40000 25`;

describe("two nodes sharing one Redis", () => {
  it("enforce one limit: a flood from one address is refused on both while another address is served", async () => {
    const redis = { url: sharedRedisUrl, keyPrefix: `${filePrefix}:shared`, timeoutMs: 5000 };
    const limits: LimitRule[] = [
      { kind: "messages", limit: "3/1h" },
      { kind: "concurrent", limit: 2 },
    ];
    const behindProxy = { proxy: ["127.0.0.1"] };
    const nodes = [await start(limits, redis, behindProxy), await start(limits, redis, behindProxy)];
    const flooder = "198.51.100.7";
    const results: number[] = [];
    for (let count = 0; count < 6; count++) {
      const node = nodes[count % 2]!;
      const client = await ready(node.port, { proxy: proxyLine(flooder) });
      const replies = await transaction(client, { to: ["a@localhost"] });
      results.push(replies.data?.code ?? replies.mail.code);
      client.close();
      await client.closed();
      // The other node's session must be served normally meanwhile.
      const other = await ready(nodes[(count + 1) % 2]!.port, { proxy: proxyLine(`203.0.113.${count + 1}`) });
      expect((await transaction(other, { to: ["a@localhost"] })).data?.code).toBe(250);
      other.close();
    }
    expect(results).toEqual([250, 250, 250, 451, 451, 451]);

    // Concurrent connections are shared too: one session on each node fills the two slots.
    const held = [
      await openSession(nodes[0]!.port, { proxy: proxyLine(flooder) }),
      await openSession(nodes[1]!.port, { proxy: proxyLine(flooder) }),
    ];
    expect(held.map((session) => session.greeting.code)).toEqual([220, 220]);
    for (const node of nodes) {
      const refused = await openSession(node.port, { proxy: proxyLine(flooder) });
      expect(refused.greeting.code).toBe(421);
      expect(refused.greeting.enhanced).toBe("4.7.0");
    }
    const someoneElse = await openSession(nodes[1]!.port, { proxy: proxyLine("203.0.113.77") });
    expect(someoneElse.greeting.code).toBe(220);
    for (const session of [...held, someoneElse]) session.client.close();
  });

  it("ignore the slots of a node whose heartbeat expired, and count those of a live one", async () => {
    const keyPrefix = `${filePrefix}:nodes`;
    const server = await start([{ kind: "concurrent", limit: 1 }], { url: sharedRedisUrl, keyPrefix, timeoutMs: 5000 });
    const gaugeKey = `${keyPrefix}:concurrent-ip:ip=127.0.0.1`;
    const redis = redisClient();
    try {
      // A node that died holding 5 slots: its field stays, its heartbeat key is gone.
      await redis.hset(gaugeKey, "dead-node", "5");
      const first = await openSession(server.port);
      expect(first.greeting.code).toBe(220);
      expect(await redis.hget(gaugeKey, "dead-node")).toBeNull();
      first.client.close();
      await first.client.closed();
      await eventually(async () => Object.keys(await redis.hgetall(gaugeKey)).length === 0);

      await redis.set(`${keyPrefix}:~node:live-node`, "1", "EX", 30);
      await redis.hset(gaugeKey, "live-node", "1");
      const refused = await openSession(server.port);
      expect(refused.greeting.code).toBe(421);
      expect(refused.greeting.enhanced).toBe("4.7.0");
    } finally {
      redis.disconnect();
    }
  });
});

describe("a Redis outage mid-test", () => {
  it('follows onError: "defer" answers 4.7.1, "allow" serves and warns; both recover', async () => {
    ownRedis = await startRedisServer();
    const limits: LimitRule[] = [
      { kind: "concurrent", limit: 1 },
      { kind: "messages", limit: "100/1h" },
    ];
    const strict = await start(limits, { url: ownRedis.url, keyPrefix: "strict", timeoutMs: 1500, onError: "defer" });
    const lenient = await start(limits, { url: ownRedis.url, keyPrefix: "lenient", timeoutMs: 1500, onError: "allow" });

    const strictSession = await ready(strict.port);
    expect((await transaction(strictSession, { to: ["a@localhost"] })).data?.code).toBe(250);
    const lenientSession = await ready(lenient.port);
    expect((await transaction(lenientSession, { to: ["a@localhost"] })).data?.code).toBe(250);

    // Redis hangs: it accepts nothing and answers nothing.
    ownRedis.freeze();
    const refusedAtConnect = await openSession(strict.port);
    expect(refusedAtConnect.greeting.code).toBe(421);
    expect(refusedAtConnect.greeting.enhanced).toBe("4.7.1");
    const deferred = await transaction(strictSession, { to: ["a@localhost"] });
    expect(deferred.mail.code).toBe(451);
    expect(deferred.mail.enhanced).toBe("4.7.1");
    // The only slot is held by lenientSession, but an unanswered check lets a session through.
    const lenientDuringHang = await ready(lenient.port);
    expect((await transaction(lenientDuringHang, { to: ["a@localhost"] })).data?.code).toBe(250);
    expect(lenient.logs.some((line) => line.level === 40 && line.code === "POSTERN_RATE_LIMIT_STORE_TIMEOUT")).toBe(
      true,
    );
    // The session holding the strict node's slot ends while Redis hangs; the release cannot get through.
    await strictSession.command("QUIT");
    await strictSession.closed();

    ownRedis.thaw();
    await eventually(async () => {
      const probe = await openSession(strict.port);
      probe.client.close();
      return probe.greeting.code === 220;
    });

    // Redis dies: connections are refused.
    await ownRedis.kill();
    const refusedWhileDown = await openSession(strict.port);
    expect(refusedWhileDown.greeting.code).toBe(421);
    expect(refusedWhileDown.greeting.enhanced).toBe("4.7.1");
    const lenientWhileDown = await ready(lenient.port);
    expect((await transaction(lenientWhileDown, { to: ["a@localhost"] })).data?.code).toBe(250);
    for (const logs of [strict.logs, lenient.logs]) {
      expect(logs.some((line) => line.level === 50 && line.plugin === "@postern/rate-limit")).toBe(false);
      expect(logs.some((line) => String(line.reply ?? "").startsWith("4.4.3"))).toBe(false);
    }

    // Redis is back (empty): limits apply again on both nodes.
    await ownRedis.restart();
    await eventually(async () => {
      const probe = await openSession(strict.port);
      if (probe.greeting.code !== 220) {
        probe.client.close();
        return false;
      }
      await probe.client.command("EHLO client.test");
      const replies = await transaction(probe.client, { to: ["a@localhost"] });
      probe.client.close();
      return replies.data?.code === 250;
    });
    // The restarted Redis is empty, but the lenient node writes back the slot lenientSession still
    // holds (sessions let through during the outage hold none), so its only slot is taken again.
    await eventually(async () => {
      const probe = await openSession(lenient.port);
      probe.client.close();
      return probe.greeting.code === 421;
    });
    for (const client of [lenientSession, lenientDuringHang, lenientWhileDown]) client.close();
  }, 90_000);

  it("a node whose Redis is unreachable from the start still starts, and defers", async () => {
    ownRedis = await startRedisServer();
    const url = ownRedis.url;
    await ownRedis.kill();
    const server = await start(
      [
        { kind: "messages", limit: "10/1h" },
        { kind: "authFailures", limit: "5/1h" },
      ],
      { url, timeoutMs: 1500, onError: "defer" },
      { auth: "optional", allowInsecureAuth: true },
    );
    const client = await ready(server.port);
    const replies = await transaction(client, { to: ["a@localhost"] });
    expect(replies.mail.code).toBe(451);
    expect(replies.mail.enhanced).toBe("4.7.1");
    // RFC 4954: a temporary AUTH failure is 454 4.7.0.
    const auth = await authPlain(client, "alice", "secret");
    expect(auth.code).toBe(454);
    expect(auth.enhanced).toBe("4.7.0");
    expect(server.logs.some((line) => line.level === 40 && /cannot reach Redis/.test(line.msg))).toBe(true);
    client.close();
  });

  it("is not ready while Redis does not answer and onError is defer; with allow it is", async () => {
    ownRedis = await startRedisServer();
    const rules: LimitRule[] = [{ kind: "messages", limit: "10/1h" }];
    const deferring = rateLimit({ limits: rules, redis: { url: ownRedis.url, timeoutMs: 1000, onError: "defer" } });
    const allowing = rateLimit({ limits: rules, redis: { url: ownRedis.url, timeoutMs: 1000, onError: "allow" } });
    servers.push(await startTestServer({ plugins: [deferring] }), await startTestServer({ plugins: [allowing] }));
    await eventually(() => isReady(deferring));
    await ownRedis.kill();
    await eventually(async () => !(await isReady(deferring)));
    await expect(deferring.ready()).rejects.toThrow();
    await expect(allowing.ready()).resolves.toBeUndefined();
  });
});
