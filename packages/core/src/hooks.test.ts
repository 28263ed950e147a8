import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  claimRecipients,
  connectSmtp,
  memoryQueue,
  type RawSmtpClient,
  type SendError,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";
import { accept, defer, disconnect, type Plugin, reject, resultKey, type Session } from "./index.ts";

let server: TestServer | undefined;
const clients: RawSmtpClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.stop();
  server = undefined;
});

async function open(target: TestServer): Promise<RawSmtpClient> {
  const client = await connectSmtp(target.port);
  clients.push(client);
  expect((await client.read()).code).toBe(220);
  return client;
}

async function transaction(client: RawSmtpClient, rcpt = "user@localhost") {
  expect((await client.command("EHLO client.test")).code).toBe(250);
  expect((await client.command("MAIL FROM:<sender@example.org>")).code).toBe(250);
  return client.command(`RCPT TO:<${rcpt}>`);
}

const sendError = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error("expected the send to fail");
    },
    (error: SendError) => error,
  );

describe("hooks and their arguments", () => {
  it("calls every hook in order with the session, transaction, message and route group", async () => {
    const seen: string[] = [];
    const queue = memoryQueue();
    const observer: Plugin = {
      name: "observer",
      hooks: {
        connect: (session) => void seen.push(`connect ${session.remoteAddress}`),
        helo: (session, name) => void seen.push(`helo ${name} ${session.listener.tls}`),
        mailFrom: (tx, address) => void seen.push(`mailFrom ${address.address} ${tx.id.length}`),
        rcptTo: (tx, recipient) => void seen.push(`rcptTo ${recipient.address} after ${tx.recipients.length}`),
        data: (tx, message) => void seen.push(`data ${message.headers.get("subject")} ${tx.recipients.length}`),
        queue: (_tx, _message, group) => void seen.push(`queue ${group.route} ${group.recipients.length}`),
        close: (session) => void seen.push(`close ${session.transactionCount}`),
      },
    };
    server = await startTestServer({ plugins: [observer, claimRecipients(), queue.plugin] });
    await server.send({ to: ["a@localhost", "b@localhost"], raw: buildMessage({ subject: "order" }) });
    await expect.poll(() => seen.at(-1)).toBe("close 1");
    expect(seen).toEqual([
      "connect 127.0.0.1",
      "helo client.test none",
      "mailFrom sender@example.org 20",
      "rcptTo a@localhost after 0",
      "rcptTo b@localhost after 1",
      "data order 2",
      "queue local 2",
      "close 1",
    ]);
  });

  it("runs queue once per route group and acknowledges only when every group is stored", async () => {
    const localOnly = memoryQueue({ routes: ["local"] });
    const routeByDomain: Plugin = {
      name: "route-by-domain",
      hooks: { rcptTo: (_tx, r) => accept({ route: r.address.endsWith("@localhost") ? "local" : "relay" }) },
    };
    server = await startTestServer({ plugins: [routeByDomain, localOnly.plugin] });
    const error = await sendError(server.send({ to: ["a@localhost", "b@remote.test"], raw: buildMessage() }));
    expect(error.responseCode).toBe(451);
    expect(error.response).toBe("451 4.3.0 Message not stored, try again later");
    // The local group was stored, yet the client was told to retry: a duplicate at worst, never a loss.
    expect(localOnly.messages).toHaveLength(1);

    const relayToo = memoryQueue({ routes: ["relay"] });
    await server.stop();
    server = await startTestServer({ plugins: [routeByDomain, localOnly.plugin, relayToo.plugin] });
    const ok = await server.send({ to: ["a@localhost", "b@remote.test"], raw: buildMessage() });
    expect(ok.response).toMatch(/^250 /);
    expect(relayToo.messages.map((m) => m.recipients)).toEqual([["b@remote.test"]]);
  });

  it("lets a data hook move recipients to another route before queueing", async () => {
    const quarantine = memoryQueue({ routes: ["quarantine"] });
    const mover: Plugin = {
      name: "mover",
      hooks: {
        data(tx) {
          for (const recipient of tx.recipients)
            if (recipient.address.startsWith("q")) tx.reroute(recipient, "quarantine");
        },
      },
    };
    const local = memoryQueue({ routes: ["local"] });
    server = await startTestServer({ plugins: [claimRecipients(), mover, local.plugin, quarantine.plugin] });
    await server.send({ to: ["q1@localhost", "a@localhost"], raw: buildMessage() });
    expect(quarantine.messages.map((m) => m.recipients)).toEqual([["q1@localhost"]]);
    expect(local.messages.map((m) => m.recipients)).toEqual([["a@localhost"]]);
  });

  it("orders hooks by pre / config order / post", async () => {
    const calls: string[] = [];
    const mark = (name: string, order?: "pre" | "post"): Plugin => ({
      name,
      hooks: { helo: order ? { handler: () => void calls.push(name), order } : () => void calls.push(name) },
    });
    server = await startTestServer({ plugins: [mark("a"), mark("late", "post"), mark("b"), mark("early", "pre")] });
    const helo = server.server.hookTable().find((info) => info.set === "smtp" && info.hook === "helo");
    expect(helo?.handlers.map((handler) => handler.plugin)).toEqual(["early", "a", "b", "late"]);
    const client = await open(server);
    await client.command("EHLO client.test");
    expect(calls).toEqual(["early", "a", "b", "late"]);
  });

  it("shares results between plugins through typed keys", async () => {
    const score = resultKey<number>("score");
    const queue = memoryQueue();
    const writer: Plugin = { name: "writer", hooks: { mailFrom: (tx) => void tx.results.set(score, 42) } };
    const reader: Plugin = {
      name: "reader",
      hooks: { data: (tx, message) => void message.prepend("X-Score", String(tx.results.get(score))) },
    };
    server = await startTestServer({ plugins: [writer, reader, claimRecipients(), queue.plugin] });
    await server.send({ to: "a@localhost", raw: buildMessage() });
    expect(queue.messages[0]!.bytes.toString()).toMatch(/^X-Score: 42\r\nReceived: /);
  });
});

describe("default verdicts", () => {
  it("rejects every recipient nobody claims: no open relay", async () => {
    server = await startTestServer({ plugins: [memoryQueue().plugin] });
    const client = await open(server);
    const reply = await transaction(client, "someone@remote.test");
    expect(reply.code).toBe(550);
    expect(reply.text).toBe("5.7.1 Relaying denied: no route for this recipient");
  });

  it("defers when no storage plugin acknowledges the message", async () => {
    server = await startTestServer({ plugins: [claimRecipients()] });
    const error = await sendError(server.send({ to: "a@localhost", raw: buildMessage() }));
    expect(error.response).toBe("451 4.3.0 Message not stored, try again later");
  });

  it("treats an accepted recipient without a route as a plugin error", async () => {
    const sloppy: Plugin = { name: "sloppy", hooks: { rcptTo: () => accept() } };
    server = await startTestServer({ plugins: [sloppy] });
    const client = await open(server);
    const reply = await transaction(client);
    expect(reply.code).toBe(451);
    expect(server.logs.some((line) => line.plugin === "sloppy" && /without a route/.test(line.msg))).toBe(true);
  });

  it("refuses AUTH when no plugin accepts it, and counts the failures", async () => {
    let failures = 0;
    const watch: Plugin = {
      name: "watch",
      hooks: {
        auth: (session) => {
          failures = session.authFailures + 1;
        },
      },
    };
    server = await startTestServer({
      plugins: [watch],
      config: { listeners: [{ port: 1, auth: "optional", allowInsecureAuth: true }] },
    });
    const client = await open(server);
    await client.command("EHLO client.test");
    const reply = await client.command(`AUTH PLAIN ${Buffer.from("\0user\0pass").toString("base64")}`);
    expect(reply.code).toBe(535);
    expect(reply.text).toBe("5.7.8 Authentication credentials invalid");
    expect((await client.command(`AUTH PLAIN ${Buffer.from("\0user\0again").toString("base64")}`)).code).toBe(535);
    expect(failures).toBe(2);
  });

  it("makes the authenticated user visible to later hooks", async () => {
    let user: string | undefined;
    const auth: Plugin = {
      name: "auth",
      hooks: { auth: (_s, credentials) => (credentials.password === "secret" ? accept() : undefined) },
    };
    const watch: Plugin = {
      name: "watch",
      hooks: {
        mailFrom: (tx) => {
          user = tx.session.user;
        },
      },
    };
    server = await startTestServer({
      plugins: [auth, watch],
      config: { listeners: [{ port: 1, auth: "required", allowInsecureAuth: true }] },
    });
    const client = await open(server);
    await client.command("EHLO client.test");
    expect((await client.command("MAIL FROM:<a@b.test>")).code).toBe(530);
    const reply = await client.command(`AUTH PLAIN ${Buffer.from("\0alice\0secret").toString("base64")}`);
    expect(reply.code).toBe(235);
    expect((await client.command("MAIL FROM:<a@b.test>")).code).toBe(250);
    expect(user).toBe("alice");
  });
});

describe("verdicts become replies", () => {
  it("connect: a refusal is the greeting, then the connection closes", async () => {
    const block: Plugin = { name: "block", hooks: { connect: () => reject("5.7.1", "Your address is blocked", 554) } };
    server = await startTestServer({ plugins: [block] });
    const client = await connectSmtp(server.port);
    clients.push(client);
    const reply = await client.read();
    expect(reply.code).toBe(554);
    expect(reply.text).toBe("5.7.1 Your address is blocked");
    await client.closed();
  });

  it("helo: a refusal keeps the session from starting a transaction", async () => {
    const picky: Plugin = {
      name: "picky",
      hooks: { helo: (_s, name) => (name === "bad.test" ? reject("5.7.1", "Bad HELO name") : undefined) },
    };
    server = await startTestServer({ plugins: [picky, claimRecipients()] });
    const client = await open(server);
    const reply = await client.command("EHLO bad.test");
    expect([reply.code, reply.text]).toEqual([550, "5.7.1 Bad HELO name"]);
    expect((await client.command("MAIL FROM:<a@b.test>")).code).toBe(503);
    expect((await client.command("EHLO good.test")).code).toBe(250);
    expect((await client.command("MAIL FROM:<a@b.test>")).code).toBe(250);
  });

  it("mailFrom / rcptTo / data: reject and defer carry their enhanced codes", async () => {
    const policy: Plugin = {
      name: "policy",
      hooks: {
        mailFrom: (_tx, from) => (from.address === "spam@bad.test" ? reject("5.7.1", "Sender refused") : undefined),
        rcptTo: (_tx, rcpt) => (rcpt.address === "later@localhost" ? defer("4.2.1", "Mailbox busy", 450) : undefined),
        data: (_tx, message) =>
          message.headers.get("subject") === "virus"
            ? reject("5.7.0", "Message refused by content filter", 554)
            : undefined,
      },
    };
    server = await startTestServer({ plugins: [policy, claimRecipients(), memoryQueue().plugin] });
    const client = await open(server);
    await client.command("EHLO client.test");
    expect((await client.command("MAIL FROM:<spam@bad.test>")).text).toBe("5.7.1 Sender refused");
    expect((await client.command("MAIL FROM:<ok@good.test>")).code).toBe(250);
    const later = await client.command("RCPT TO:<later@localhost>");
    expect([later.code, later.text]).toEqual([450, "4.2.1 Mailbox busy"]);
    expect((await client.command("RCPT TO:<fine@localhost>")).code).toBe(250);
    expect((await client.command("DATA")).code).toBe(354);
    client.write(buildMessage({ subject: "virus" }));
    client.write(".\r\n");
    const refused = await client.read();
    expect([refused.code, refused.text]).toEqual([554, "5.7.0 Message refused by content filter"]);
  });

  it("disconnect: replies and closes the connection", async () => {
    const bouncer: Plugin = { name: "bouncer", hooks: { mailFrom: () => disconnect("4.7.0", "Too busy") } };
    server = await startTestServer({ plugins: [bouncer] });
    const client = await open(server);
    await client.command("EHLO client.test");
    const reply = await client.command("MAIL FROM:<a@b.test>");
    expect([reply.code, reply.text]).toEqual([421, "4.7.0 Too busy"]);
    await client.closed();
  });
});

describe("fail closed", () => {
  it("a throwing hook answers 451 4.3.0, is logged with plugin, hook and session, and the server keeps serving", async () => {
    const broken: Plugin = {
      name: "broken",
      hooks: {
        rcptTo: (_tx, rcpt) => {
          if (rcpt.address.startsWith("boom")) throw new Error("database is down");
          return accept({ route: "local" });
        },
      },
    };
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [broken, queue.plugin] });
    const client = await open(server);
    const reply = await transaction(client, "boom@localhost");
    expect([reply.code, reply.text]).toEqual([451, "4.3.0 Temporary local problem, try again later"]);
    const line = server.logs.find((record) => record.plugin === "broken");
    expect(line).toMatchObject({ hook: "rcptTo", code: "POSTERN_HOOK_FAILED" });
    expect(line?.session).toEqual(expect.any(String));
    expect(line?.msg).toMatch(/database is down/);
    await server.send({ to: "fine@localhost", raw: buildMessage() });
    expect(queue.messages).toHaveLength(1);
  });

  it("a throwing queue hook never turns into an acknowledgement", async () => {
    const failingStore: Plugin = {
      name: "failing-store",
      hooks: {
        queue: async () => {
          throw new Error("disk full");
        },
      },
    };
    server = await startTestServer({ plugins: [claimRecipients(), failingStore, memoryQueue().plugin] });
    const error = await sendError(server.send({ to: "a@localhost", raw: buildMessage() }));
    expect(error.response).toBe("451 4.3.0 Temporary local problem, try again later");
  });

  it("a hook past its deadline answers 451 4.4.3 and the session goes on", async () => {
    const hanging: Plugin = {
      name: "hanging",
      hooks: {
        mailFrom: {
          handler: (_tx, from, { signal }) =>
            from.address === "slow@example.org"
              ? new Promise((resolve) => signal.addEventListener("abort", () => resolve(undefined)))
              : undefined,
          timeoutMs: 200,
        },
      },
    };
    server = await startTestServer({ plugins: [hanging] });
    const client = await open(server);
    await client.command("EHLO client.test");
    const reply = await client.command("MAIL FROM:<slow@example.org>");
    expect([reply.code, reply.text]).toEqual([451, "4.4.3 Timeout while checking the message, try again later"]);
    expect(server.logs.some((l) => l.plugin === "hanging" && l.code === "POSTERN_HOOK_TIMEOUT")).toBe(true);
    expect((await client.command("MAIL FROM:<quick@example.org>")).code).toBe(250);
  });

  it("a hook returning something that is not a verdict fails closed", async () => {
    const confused: Plugin = { name: "confused", hooks: { mailFrom: () => ({ ok: true }) as never } };
    server = await startTestServer({ plugins: [confused] });
    const client = await open(server);
    await client.command("EHLO client.test");
    expect((await client.command("MAIL FROM:<a@b.test>")).code).toBe(451);
    expect(server.logs.some((l) => l.code === "POSTERN_HOOK_BAD_VERDICT")).toBe(true);
  });
});

describe("sessions", () => {
  it("runs close for every ended connection, with the session", async () => {
    const closed: Session[] = [];
    server = await startTestServer({ plugins: [{ name: "watch", hooks: { close: (s) => void closed.push(s) } }] });
    const client = await open(server);
    await client.command("QUIT");
    await client.closed();
    const dropped = await open(server);
    dropped.close();
    await expect.poll(() => closed.length).toBe(2);
  });
});
