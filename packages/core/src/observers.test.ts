// The observer channel sees what happened — hook results, sessions, TLS, AUTH, refusals, the end of
// every transaction — and cannot change any of it: an observer that throws is logged and ignored.
import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  claimRecipients,
  connectSmtp,
  createTestCertificate,
  memoryQueue,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";
import {
  accept,
  authAttempted,
  commandRefused,
  type EventKey,
  hookCompleted,
  type Plugin,
  reject,
  sessionClosed,
  sessionOpened,
  spoolRefused,
  tlsEstablished,
  transactionEnded,
} from "./index.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** A plugin that records every event of the given keys from setup() on. */
function recorder() {
  const seen: { event: string; payload: Record<string, unknown> }[] = [];
  const plugin: Plugin = {
    name: "recorder",
    setup(context) {
      for (const key of [
        hookCompleted,
        sessionOpened,
        sessionClosed,
        tlsEstablished,
        authAttempted,
        commandRefused,
        spoolRefused,
        transactionEnded,
      ] as EventKey<unknown>[]) {
        context.events.on(key, (payload) => void seen.push({ event: key.name, payload: payload as never }));
      }
    },
  };
  return {
    plugin,
    seen,
    of: (name: string) => seen.filter((entry) => entry.event === name).map((entry) => entry.payload),
  };
}

describe("observers", () => {
  it("see hook results with plugin, verdict and duration, and the end of each transaction", async () => {
    const events = recorder();
    const queue = memoryQueue();
    const refuser: Plugin = {
      name: "refuser",
      hooks: {
        rcptTo: (_tx, recipient) => (recipient.address.startsWith("no") ? reject("5.7.1", "Not here") : undefined),
      },
    };
    server = await startTestServer({ plugins: [events.plugin, refuser, claimRecipients(), queue.plugin] });
    await server.send({ to: ["yes@localhost", "no@localhost"], raw: buildMessage() }).catch(() => undefined);
    await expect.poll(() => events.of("session.closed").length).toBe(1);

    const rcptCalls = events.of("hook.completed").filter((call) => call.hook === "rcptTo");
    expect(rcptCalls.map((call) => [call.plugin, (call.answer as { kind?: string } | undefined)?.kind])).toEqual([
      ["refuser", undefined],
      ["test:claim-recipients", "accept"],
      ["refuser", "reject"],
    ]);
    for (const call of rcptCalls) expect(call.durationMs).toBeGreaterThanOrEqual(0);
    expect(events.of("command.refused")).toMatchObject([
      { stage: "rcptTo", plugin: "refuser", address: "no@localhost", reply: { code: 550 } },
    ]);
    const [ended] = events.of("transaction.ended");
    expect(ended).toMatchObject({
      outcome: "queued",
      reply: { code: 250 },
      groups: [{ route: "local" }],
      recipients: [{ address: "yes@localhost", original: "yes@localhost" }],
    });
    expect(events.of("session.opened")).toHaveLength(1);
  });

  it("report abandoned transactions and spool refusals", async () => {
    const events = recorder();
    server = await startTestServer({
      plugins: [events.plugin, claimRecipients(), memoryQueue().plugin],
      config: { limits: { maxMessageSize: 1024 } },
    });
    const client = await connectSmtp(server.port);
    await client.read();
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<a@example.org>");
    await client.command("RCPT TO:<x@localhost>");
    await client.command("RSET");
    await client.command("MAIL FROM:<b@example.org>");
    await client.command("RCPT TO:<y@localhost>");
    await client.command("DATA");
    client.write(`Subject: big\r\n\r\n${"x".repeat(70).concat("\r\n").repeat(30)}.\r\n`);
    expect((await client.read()).code).toBe(552);
    client.close();
    await expect.poll(() => events.of("session.closed").length).toBe(1);
    expect(events.of("transaction.ended").map((event) => event.outcome)).toEqual(["abandoned", "refused"]);
    expect(events.of("spool.refused")).toMatchObject([{ problem: "size" }]);
  });

  it("see TLS and AUTH outcomes", async () => {
    const events = recorder();
    const certificate = await createTestCertificate();
    const auth: Plugin = {
      name: "auth",
      hooks: { auth: (_session, credentials) => (credentials.password === "right" ? accept() : undefined) },
    };
    server = await startTestServer({
      plugins: [events.plugin, auth],
      config: {
        listeners: [
          {
            address: "127.0.0.1",
            port: 1,
            tls: "starttls",
            auth: "optional",
            certificate: certificate.certificate,
            key: certificate.key,
          },
        ],
      },
    });
    const client = await connectSmtp(server.port);
    await client.read();
    await client.command("EHLO client.test");
    await client.startTls();
    await client.command("EHLO client.test");
    const plain = (password: string) => Buffer.from(`\0alice\0${password}`).toString("base64");
    expect((await client.command(`AUTH PLAIN ${plain("wrong")}`)).code).toBe(535);
    expect((await client.command(`AUTH PLAIN ${plain("right")}`)).code).toBe(235);
    client.close();
    expect(events.of("tls.established")).toMatchObject([{ tls: { protocol: expect.stringMatching(/^TLSv1\.[23]$/) } }]);
    expect(events.of("auth.attempted")).toMatchObject([
      { username: "alice", outcome: "refused", plugin: undefined },
      { username: "alice", outcome: "accepted", plugin: "auth" },
    ]);
  });

  it("cannot change a verdict: an observer that throws is logged and the mail still goes through", async () => {
    const queue = memoryQueue();
    const hostile: Plugin = {
      name: "hostile-observer",
      setup(context) {
        context.events.on(hookCompleted, () => {
          throw new Error("observer bug");
        });
        context.events.on(transactionEnded, async () => {
          throw new Error("async observer bug");
        });
      },
    };
    server = await startTestServer({ plugins: [hostile, claimRecipients(), queue.plugin] });
    const result = await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(result.response).toMatch(/^250 /);
    expect(queue.messages).toHaveLength(1);
    await expect
      .poll(() => server!.logs.filter((line) => line.msg === "an observer failed (ignored)").map((line) => line.event))
      .toEqual(expect.arrayContaining(["hook.completed", "transaction.ended"]));
  });
});
