// Every kind of limit and every key, over real SMTP, once per backend: the same suite for the
// in-memory counters and for Redis (the real server at REDIS_URL, keys under a prefix of this file).
import {
  claimRecipients,
  deleteRedisKeys,
  memoryQueue,
  sharedRedisUrl,
  startTestServer,
  type TestServer,
  uniqueRedisPrefix,
} from "@postern/testing";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import rateLimit, { type RateLimitOptions } from "./index.ts";
import { authPlain, openSession, ready, testAuth, transaction } from "./support.test-util.ts";

const filePrefix = uniqueRedisPrefix("rate-limit:limits");
let runs = 0;

const backends: { name: string; options: () => Partial<RateLimitOptions> }[] = [
  { name: "memory", options: () => ({}) },
  {
    name: "redis",
    options: () => ({ redis: { url: sharedRedisUrl, keyPrefix: `${filePrefix}:${++runs}`, timeoutMs: 5000 } }),
  },
];

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});
afterAll(async () => {
  await deleteRedisKeys(filePrefix);
});

describe.each(backends)("limits with the $name backend", ({ options: backendOptions }) => {
  const start = async (options: Omit<RateLimitOptions, "redis">) => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [rateLimit({ ...options, ...backendOptions() }), testAuth(), claimRecipients(), queue.plugin],
      config: { listeners: [{ address: "127.0.0.1", port: 1, auth: "optional", allowInsecureAuth: true }] },
    });
    return { server, queue };
  };

  it("concurrent connections per IP: over the limit 421 4.7.0 and close; a slot frees when a session quits", async () => {
    const { server } = await start({ limits: [{ kind: "concurrent", limit: 2 }] });
    const first = await openSession(server.port);
    const second = await openSession(server.port);
    expect([first.greeting.code, second.greeting.code]).toEqual([220, 220]);
    const third = await openSession(server.port);
    expect(third.greeting.code).toBe(421);
    expect(third.greeting.enhanced).toBe("4.7.0");
    await third.client.closed();
    expect((await first.client.command("QUIT")).code).toBe(221);
    await first.client.closed();
    // The slot is given back by the close hook, right after the connection ended.
    let fourth = await openSession(server.port);
    for (let attempt = 0; fourth.greeting.code !== 220 && attempt < 50; attempt++) {
      fourth.client.close();
      await new Promise((resolve) => setTimeout(resolve, 100));
      fourth = await openSession(server.port);
    }
    expect(fourth.greeting.code).toBe(220);
    second.client.close();
    fourth.client.close();
  });

  it("connections per window by IP", async () => {
    const { server } = await start({ limits: [{ kind: "connections", limit: "2/1h" }] });
    for (let count = 0; count < 2; count++) {
      const { client, greeting } = await openSession(server.port);
      expect(greeting.code).toBe(220);
      await client.command("QUIT");
    }
    const refused = await openSession(server.port);
    expect(refused.greeting.code).toBe(421);
    expect(refused.greeting.text).toMatch(/^4\.7\.0 Too many connections/);
    await refused.client.closed();
  });

  it("messages per window by IP: the next MAIL FROM gets 451 4.7.1", async () => {
    const { server, queue } = await start({ limits: [{ kind: "messages", limit: "2/1h" }] });
    const client = await ready(server.port);
    for (let count = 0; count < 2; count++) {
      const replies = await transaction(client, { to: ["a@localhost"] });
      expect(replies.data?.code).toBe(250);
    }
    const refused = await transaction(client, { to: ["a@localhost"] });
    expect(refused.mail.code).toBe(451);
    expect(refused.mail.enhanced).toBe("4.7.1");
    expect(queue.messages).toHaveLength(2);
    expect(server.logs.some((line) => line.msg === "rate limit reached" && line.key === "ip=127.0.0.1")).toBe(true);
    client.close();
  });

  it("messages by sender address and by sender domain", async () => {
    const { server } = await start({
      limits: [
        { kind: "messages", key: "sender", limit: "1/1h" },
        { kind: "messages", key: "senderDomain", limit: "3/1h" },
      ],
    });
    const client = await ready(server.port);
    expect((await transaction(client, { from: "ann@one.example", to: ["a@localhost"] })).data?.code).toBe(250);
    expect((await transaction(client, { from: "ANN@One.Example", to: ["a@localhost"] })).mail.code).toBe(451);
    expect((await transaction(client, { from: "bob@one.example", to: ["a@localhost"] })).data?.code).toBe(250);
    // one.example has now been counted 3 times (the refused one too): its domain limit is reached.
    expect((await transaction(client, { from: "cat@one.example", to: ["a@localhost"] })).mail.code).toBe(451);
    expect((await transaction(client, { from: "dan@two.example", to: ["a@localhost"] })).data?.code).toBe(250);
    client.close();
  });

  it("messages by HELO name", async () => {
    const { server } = await start({ limits: [{ kind: "messages", key: "helo", limit: "1/1h" }] });
    const first = await ready(server.port, { helo: "one.example" });
    expect((await transaction(first, { to: ["a@localhost"] })).data?.code).toBe(250);
    expect((await transaction(first, { to: ["a@localhost"] })).mail.code).toBe(451);
    const second = await ready(server.port, { helo: "two.example" });
    expect((await transaction(second, { to: ["a@localhost"] })).data?.code).toBe(250);
    first.close();
    second.close();
  });

  it("messages by authenticated user; sessions without a user are not counted by a user key", async () => {
    const { server } = await start({ limits: [{ kind: "messages", key: "user", limit: "1/1h" }] });
    const alice = await ready(server.port);
    expect((await authPlain(alice, "alice", "secret")).code).toBe(235);
    expect((await transaction(alice, { to: ["a@localhost"] })).data?.code).toBe(250);
    expect((await transaction(alice, { to: ["a@localhost"] })).mail.code).toBe(451);
    const bob = await ready(server.port);
    expect((await authPlain(bob, "bob", "secret")).code).toBe(235);
    expect((await transaction(bob, { to: ["a@localhost"] })).data?.code).toBe(250);
    const anonymous = await ready(server.port);
    for (let count = 0; count < 3; count++) {
      expect((await transaction(anonymous, { to: ["a@localhost"] })).data?.code).toBe(250);
    }
    for (const client of [alice, bob, anonymous]) client.close();
  });

  it("recipients per window by IP and by recipient address", async () => {
    const { server } = await start({
      limits: [
        { kind: "recipients", limit: "4/1h" },
        { kind: "recipients", key: "recipient", limit: "2/1h" },
      ],
    });
    const client = await ready(server.port);
    const replies = await transaction(client, {
      to: ["a@localhost", "A@LOCALHOST", "a@localhost", "b@localhost", "c@localhost"],
    });
    expect(replies.rcpt.map((reply) => reply.code)).toEqual([250, 250, 451, 250, 451]);
    expect(replies.rcpt[2]!.enhanced).toBe("4.7.1");
    expect(replies.rcpt[4]!.text).toMatch(/^4\.7\.1 Recipient rate limit/);
    expect(replies.data?.code).toBe(250);
    client.close();
  });

  it("recipients per message: 452 4.5.3 past the limit, per recipient domain when keyed so", async () => {
    const { server, queue } = await start({
      limits: [
        { kind: "recipientsPerMessage", limit: 3 },
        { kind: "recipientsPerMessage", key: "recipientDomain", limit: 2 },
      ],
    });
    const client = await ready(server.port);
    const replies = await transaction(client, {
      to: ["a@one.example", "b@one.example", "c@one.example", "d@two.example", "e@two.example"],
    });
    expect(replies.rcpt.map((reply) => reply.code)).toEqual([250, 250, 452, 250, 452]);
    expect(replies.rcpt[2]!.enhanced).toBe("4.5.3");
    expect(replies.rcpt[4]!.text).toMatch(/^4\.5\.3 Too many recipients/);
    expect(queue.messages[0]!.recipients).toEqual(["a@one.example", "b@one.example", "d@two.example"]);
    // A new transaction starts from zero.
    const next = await transaction(client, { to: ["f@one.example", "g@one.example"] });
    expect(next.rcpt.map((reply) => reply.code)).toEqual([250, 250]);
    client.close();
  });

  it("messages per user and recipient domain (combined key) count once per domain per message", async () => {
    const { server } = await start({
      limits: [{ kind: "messages", key: ["user", "recipientDomain"], limit: "1/1h" }],
    });
    const alice = await ready(server.port);
    expect((await authPlain(alice, "alice", "secret")).code).toBe(235);
    const first = await transaction(alice, { to: ["a@one.example", "b@one.example", "c@two.example"] });
    expect(first.rcpt.map((reply) => reply.code)).toEqual([250, 250, 250]);
    const second = await transaction(alice, { to: ["d@one.example", "e@three.example", "f@one.example"] });
    expect(second.rcpt.map((reply) => reply.code)).toEqual([451, 250, 451]);
    expect(second.data?.code).toBe(250);
    const bob = await ready(server.port);
    expect((await authPlain(bob, "bob", "secret")).code).toBe(235);
    expect((await transaction(bob, { to: ["a@one.example"] })).rcpt[0]!.code).toBe(250);
    alice.close();
    bob.close();
  });

  it("AUTH failures per window by IP: 421 4.7.0 and close past the limit; successful logins do not count", async () => {
    const { server } = await start({ limits: [{ kind: "authFailures", limit: "2/1h" }] });
    for (let count = 0; count < 3; count++) {
      const client = await ready(server.port);
      expect((await authPlain(client, "alice", "secret")).code).toBe(235);
      expect((await transaction(client, { to: ["a@localhost"] })).data?.code).toBe(250);
      await client.command("QUIT");
      await client.closed();
    }
    const client = await ready(server.port);
    expect((await authPlain(client, "alice", "wrong")).code).toBe(535);
    expect((await authPlain(client, "alice", "wrong")).code).toBe(535);
    const refused = await authPlain(client, "alice", "secret");
    expect(refused.code).toBe(421);
    expect(refused.text).toMatch(/^4\.7\.0 Too many failed authentication attempts/);
    await client.closed();
  });

  it("AUTH failures by user name: one name's failures do not lock out another", async () => {
    const { server } = await start({ limits: [{ kind: "authFailures", key: "user", limit: "1/1h" }] });
    const client = await ready(server.port);
    expect((await authPlain(client, "alice", "wrong")).code).toBe(535);
    expect((await authPlain(client, "bob", "wrong")).code).toBe(535);
    expect((await authPlain(client, "bob", "secret")).code).toBe(421);
    await client.closed();
    const next = await ready(server.port);
    expect((await authPlain(next, "carol", "secret")).code).toBe(235);
    next.close();
  });

  it("bytes per window: a message past the allowance gets 451 4.7.1 and does not use it up", async () => {
    const { server, queue } = await start({ limits: [{ kind: "bytes", limit: "2KB/1h" }] });
    const client = await ready(server.port);
    const text = `${"x".repeat(70)}\n`.repeat(12);
    expect((await transaction(client, { to: ["a@localhost"], text })).data?.code).toBe(250);
    const refused = await transaction(client, { to: ["a@localhost"], text });
    expect(refused.data?.code).toBe(451);
    expect(refused.data?.text).toMatch(/^4\.7\.1 Data volume limit exceeded/);
    expect((await transaction(client, { to: ["a@localhost"], text: "short\n" })).data?.code).toBe(250);
    expect(queue.messages).toHaveLength(2);
    client.close();
  });

  it("CIDR ranges: key network counts a range as one; a rule for other networks does not apply", async () => {
    const { server } = await start({
      limits: [
        { kind: "messages", key: "network", networks: ["127.0.0.0/8"], limit: "2/1h" },
        { kind: "messages", networks: ["10.0.0.0/8", "2001:db8::/32"], limit: "1/1h", name: "elsewhere" },
      ],
    });
    const first = await ready(server.port);
    expect((await transaction(first, { to: ["a@localhost"] })).data?.code).toBe(250);
    const second = await ready(server.port, { host: "127.0.0.1" });
    expect((await transaction(second, { to: ["a@localhost"] })).data?.code).toBe(250);
    expect((await transaction(second, { to: ["a@localhost"] })).mail.code).toBe(451);
    expect(server.logs.find((line) => line.msg === "rate limit reached")?.key).toBe("network=127.0.0.0/8");
    first.close();
    second.close();
  });

  it("allowlisted networks and users bypass every limit", async () => {
    const first = await start({ limits: [{ kind: "messages", limit: "1/1h" }], allow: { users: ["vip"] } });
    const vip = await ready(first.server.port);
    expect((await authPlain(vip, "vip", "secret")).code).toBe(235);
    for (let count = 0; count < 3; count++) {
      expect((await transaction(vip, { to: ["a@localhost"] })).data?.code).toBe(250);
    }
    const joe = await ready(first.server.port);
    expect((await authPlain(joe, "joe", "secret")).code).toBe(235);
    expect((await transaction(joe, { to: ["a@localhost"] })).data?.code).toBe(250);
    expect((await transaction(joe, { to: ["a@localhost"] })).mail.code).toBe(451);
    vip.close();
    joe.close();
    await first.server.stop();

    const second = await start({
      limits: [{ kind: "messages", limit: "1/1h" }],
      allow: { networks: ["127.0.0.0/24"] },
    });
    const trusted = await ready(second.server.port);
    for (let count = 0; count < 3; count++) {
      expect((await transaction(trusted, { to: ["a@localhost"] })).data?.code).toBe(250);
    }
    trusted.close();
  });

  it("tarpit: a refusal is held back before it is sent", async () => {
    const { server } = await start({ limits: [{ kind: "messages", limit: "1/1h", tarpit: "3s" }] });
    const client = await ready(server.port);
    expect((await transaction(client, { to: ["a@localhost"] })).data?.code).toBe(250);
    client.write("MAIL FROM:<sender@example.org>\r\n");
    await expect(client.read(300)).rejects.toThrow(/no reply within 300 ms/);
    const refused = await client.read(10_000);
    expect(refused.code).toBe(451);
    client.close();
  });
});
