// The defaults and failure replies the guide's hook table states, checked over SMTP.
import type { Plugin } from "@postern/core";
import { claimRecipients, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function transactionUpTo(plugins: Plugin[], recipient = "user@localhost") {
  server = await startTestServer({ plugins });
  const client = await server.connect();
  const greeting = await client.read();
  await client.command("EHLO client.test");
  const mail = await client.command("MAIL FROM:<sender@example.org>");
  const rcpt = await client.command(`RCPT TO:<${recipient}>`);
  return { client, greeting, mail, rcpt };
}

describe("hook defaults, when every plugin returns nothing", () => {
  it("connect, helo and mailFrom accept; rcptTo refuses 550 5.7.1 (no open relay)", async () => {
    const { client, greeting, mail, rcpt } = await transactionUpTo([]);
    expect([greeting.code, mail.code]).toEqual([220, 250]);
    expect([rcpt.code, rcpt.enhanced]).toEqual([550, "5.7.1"]);
    client.close();
  });

  it("queue defers 451 4.3.0: mail nobody stored is never acknowledged", async () => {
    const { client } = await transactionUpTo([claimRecipients()]);
    expect((await client.command("DATA")).code).toBe(354);
    const reply = await client.command("Subject: x\r\n\r\nbody\r\n.");
    expect([reply.code, reply.enhanced]).toEqual([451, "4.3.0"]);
    client.close();
  });

  it("auth refuses 535 5.7.8", async () => {
    server = await startTestServer({
      plugins: [],
      config: { listeners: [{ port: 1, auth: "optional", allowInsecureAuth: true }] },
    });
    const client = await server.connect();
    await client.read();
    await client.command("EHLO client.test");
    const reply = await client.command(`AUTH PLAIN ${Buffer.from("\0alice\0secret").toString("base64")}`);
    expect([reply.code, reply.enhanced]).toEqual([535, "5.7.8"]);
    client.close();
  });
});

describe("hook failures fail closed", () => {
  it("a hook that throws answers 451 4.3.0; one past its deadline 451 4.4.3", async () => {
    const throwing: Plugin = {
      name: "throws",
      hooks: {
        rcptTo: (_transaction, recipient) => {
          if (recipient.address.startsWith("throw@")) throw new Error("boom");
          return new Promise(() => undefined); // never answers
        },
      },
    };
    const { client, rcpt } = await transactionUpTo([throwing], "throw@localhost");
    expect([rcpt.code, rcpt.enhanced]).toEqual([451, "4.3.0"]);
    await server?.stop();

    const hanging: Plugin = {
      name: "hangs",
      hooks: { rcptTo: { timeoutMs: 200, handler: throwing.hooks?.rcptTo as never } },
    };
    const second = await transactionUpTo([hanging], "wait@localhost");
    expect([second.rcpt.code, second.rcpt.enhanced]).toEqual([451, "4.4.3"]);
    client.close();
    second.client.close();
  });
});
