// What core does to every message before any plugin sees it, and to every session whatever its
// pace: forged Authentication-Results removed, mail loops refused, NUL refused, trickling clients
// closed.
import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  claimRecipients,
  connectSmtp,
  memoryQueue,
  type RawSmtpClient,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";
import { accept, type Plugin } from "./index.ts";

let server: TestServer | undefined;
const clients: RawSmtpClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.stop();
  server = undefined;
});

async function inData(target: TestServer): Promise<RawSmtpClient> {
  const client = await connectSmtp(target.port);
  clients.push(client);
  await client.read();
  await client.command("EHLO client.test");
  await client.command("MAIL FROM:<sender@example.org>");
  await client.command("RCPT TO:<user@localhost>");
  expect((await client.command("DATA")).code).toBe(354);
  return client;
}

describe("Authentication-Results claiming our authserv-id", () => {
  const forged = buildMessage({
    headers: [
      ["Authentication-Results", "mx.test; spf=pass smtp.mailfrom=bank.example; dkim=pass header.d=bank.example"],
      ["Authentication-Results", "other.example; spf=fail smtp.mailfrom=bank.example"],
      ["Authentication-Results", '(comment) "MX.TEST."; dmarc=pass'],
    ],
  });

  for (const [label, authenticated] of [
    ["from an MX client", false],
    ["from an authenticated sender (the plugins skip those, core does not)", true],
  ] as const) {
    it(`are removed before any plugin runs, ${label}`, async () => {
      const queue = memoryQueue();
      let seenByPlugin: string[] = [];
      const looker: Plugin = {
        name: "looker",
        hooks: {
          auth: () => accept(),
          data: (_tx, message) => {
            seenByPlugin = message.headers.getAll("authentication-results");
          },
        },
      };
      server = await startTestServer({
        plugins: [looker, claimRecipients(), queue.plugin],
        config: authenticated
          ? { listeners: [{ address: "127.0.0.1", port: 1, auth: "optional", allowInsecureAuth: true }] }
          : {},
      });
      await server.send({
        to: "user@localhost",
        raw: forged,
        startTls: false,
        ...(authenticated ? { auth: { user: "alice", pass: "secret" } } : {}),
      });
      expect(seenByPlugin).toEqual(["other.example; spf=fail smtp.mailfrom=bank.example"]);
      const stored = queue.messages[0]!.bytes.toString("latin1");
      expect(stored).not.toContain("mx.test; spf=pass");
      expect(stored).not.toContain("dmarc=pass");
      expect(stored).toContain("Authentication-Results: other.example; spf=fail");
    });
  }

  it("honour a configured authserv-id instead of the hostname", async () => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [claimRecipients(), queue.plugin],
      config: { authservId: "auth.example.net" },
    });
    await server.send({
      to: "user@localhost",
      raw: buildMessage({ headers: { "Authentication-Results": "auth.example.net; spf=pass" } }),
    });
    expect(queue.messages[0]!.bytes.toString("latin1")).not.toContain("auth.example.net; spf=pass");
  });
});

describe("mail loops", () => {
  const withHops = (count: number) =>
    buildMessage({
      headers: Array.from(
        { length: count },
        (_, index) =>
          ["Received", `from hop${index}.example by hop${index + 1}.example; Thu, 3 Dec 2026 07:00:00 +0000`] as [
            string,
            string,
          ],
      ),
    });

  it("refuse a message with more Received fields than limits.maxReceived with 554 5.4.6", async () => {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), queue.plugin] });
    const refused = await server.send({ to: "user@localhost", raw: withHops(150) }).catch((error: Error) => error);
    expect(String((refused as { response?: string }).response)).toMatch(/^554 5\.4\.6 /);
    expect(queue.messages).toHaveLength(0);
    // 100 hops is still within the default.
    await server.send({ to: "user@localhost", raw: withHops(100) });
    expect(queue.messages).toHaveLength(1);
  });

  it("follow a configured limit", async () => {
    server = await startTestServer({
      plugins: [claimRecipients(), memoryQueue().plugin],
      config: { limits: { maxReceived: 3 } },
    });
    const refused = await server.send({ to: "user@localhost", raw: withHops(4) }).catch((error: Error) => error);
    expect(String((refused as { response?: string }).response)).toMatch(/^554 5\.4\.6 /);
  });
});

describe("NUL in DATA", () => {
  it("is refused with 554 5.6.0, and the session goes on", async () => {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), queue.plugin] });
    const client = await inData(server);
    client.write("Subject: nul\r\n\r\nbefore\0after\r\n.\r\n");
    const reply = await client.read();
    expect([reply.code, reply.enhanced]).toEqual([554, "5.6.0"]);
    expect(queue.messages).toHaveLength(0);
    expect((await client.command("NOOP")).code).toBe(250);
  });
});

describe("slow clients", () => {
  it("a session past listeners.sessionTimeoutMs gets 421 4.4.2 and is closed, however busy it keeps", async () => {
    server = await startTestServer({
      plugins: [claimRecipients(), memoryQueue().plugin],
      config: { listeners: [{ address: "127.0.0.1", port: 1, sessionTimeoutMs: 600 }] },
    });
    const client = await connectSmtp(server.port);
    clients.push(client);
    await client.read();
    const keepBusy = setInterval(() => client.write("NOOP\r\n"), 50);
    try {
      await client.closed(5000);
    } finally {
      clearInterval(keepBusy);
    }
    expect(client.transcript).toContain("421 4.4.2 Session lasted too long, closing");
  });

  it("DATA slower than listeners.minDataRate after the grace period gets 421 4.4.2, nothing stored", async () => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [claimRecipients(), queue.plugin],
      config: { listeners: [{ address: "127.0.0.1", port: 1, minDataRate: 1000, dataGraceMs: 1000 }] },
    });
    const client = await inData(server);
    client.write("Subject: slow\r\n\r\n");
    // One byte every 100 ms: 10 bytes/s, far below 1,000.
    const trickle = setInterval(() => client.write("x"), 100);
    try {
      await client.closed(8000);
    } finally {
      clearInterval(trickle);
    }
    expect(client.transcript).toContain("421 4.4.2 Message data arrived too slowly, closing");
    expect(queue.messages).toHaveLength(0);
  });
});
