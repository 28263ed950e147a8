import { type Plugin, reject } from "@postern/core";
import { claimRecipients, memoryQueue, runOrder, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";

// #region ordering
// Refuses listed recipients before any plugin can claim them, wherever it sits in the list.
const blocklist: Plugin = {
  name: "blocklist",
  hooks: {
    rcptTo: {
      order: "pre",
      timeoutMs: 2000, // this hook's own deadline (default: limits.hookTimeoutMs, 30 s)
      handler: (_transaction, recipient) =>
        recipient.address.startsWith("blocked@") ? reject("5.7.1", "Recipient blocked") : undefined,
    },
  },
};

// Sees only the recipients nobody decided on: it runs after every plugin without an order.
const unclaimed: string[] = [];
const audit: Plugin = {
  name: "audit",
  hooks: {
    rcptTo: {
      order: "post",
      handler: (_transaction, recipient) => {
        unclaimed.push(recipient.address);
      },
    },
  },
};

const local = claimRecipients({ match: (address) => address.endsWith("@localhost") });
// Config order: local, blocklist, audit. rcptTo runs: blocklist ("pre"), local, audit ("post").
const plugins = [local, blocklist, audit];
// #endregion ordering

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("plugin order", () => {
  it("runs pre hooks first, then config order, then post hooks; the first verdict ends the chain", async () => {
    server = await startTestServer({ plugins: [...plugins, memoryQueue().plugin] });
    expect(runOrder(server.server, "rcptTo")).toEqual(["blocklist", "test:claim-recipients", "audit"]);

    const client = await server.connect();
    await client.read();
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<sender@example.org>");
    expect((await client.command("RCPT TO:<blocked@localhost>")).code).toBe(550);
    expect((await client.command("RCPT TO:<user@localhost>")).code).toBe(250);
    expect((await client.command("RCPT TO:<user@elsewhere.test>")).enhanced).toBe("5.7.1");
    client.close();
    expect(unclaimed).toEqual(["user@elsewhere.test"]);
  });
});
