// The directory through the plugin over real SMTP: what each RCPT TO becomes (core's recipients,
// with their routes, originals, subaddress details and forwarding senders), and every refusal.

import { memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import recipients, { type RecipientsOptions } from "./index.ts";
import { createSrs } from "./srs.ts";
import { rcpt, recipientsOf, send } from "./test-smtp.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const base = {
  domains: ["example.com", "example.org"],
  postmaster: "admin@example.com",
  mailboxes: ["alice@example.com", "bob@example.com", "admin@example.com", "carol@example.org"],
} satisfies RecipientsOptions;

async function start(options: Partial<RecipientsOptions> = {}, maxExpansion?: number) {
  const queue = memoryQueue();
  server = await startTestServer({
    plugins: [recipients({ ...base, ...options } as RecipientsOptions), queue.plugin],
    ...(maxExpansion ? { config: { limits: { maxExpansion } } } : {}),
  });
  return { server, queue };
}

const secrets = ["forwarding-secret-1"];

describe("subaddresses", () => {
  it("delivers alice+news to alice, with the detail for stores and the address given as original", async () => {
    const { server, queue } = await start({ subaddressDelimiter: "+-" });
    expect(await send(server, ["Alice+News@example.com", "bob-x@example.com"])).toMatch(/^250/);
    expect(recipientsOf(queue.messages)).toEqual([
      {
        address: "alice@example.com",
        route: "local",
        original: "Alice+News@example.com",
        detail: "News",
        sender: undefined,
      },
      { address: "bob@example.com", route: "local", original: "bob-x@example.com", detail: "x", sender: undefined },
    ]);
    expect(await rcpt(server, ["+news@example.com", "carol+x@example.org", "nobody+x@example.com"])).toEqual([
      "550 5.1.1",
      "250 2.1.5",
      "550 5.1.1",
    ]);
  });

  it("is off with an empty delimiter", async () => {
    const { server } = await start({ subaddressDelimiter: "" });
    expect(await rcpt(server, ["alice+news@example.com", "alice@example.com"])).toEqual(["550 5.1.1", "250 2.1.5"]);
  });
});

describe("aliases and lists", () => {
  it("expands a list into its mailboxes and forwards, dropping unknown members, one copy each across RCPTs", async () => {
    const { server, queue } = await start({
      srs: { domain: "fwd.example.com", secrets },
      aliases: {
        map: {
          aliases: {
            "info@example.com": ["alice", "team", "John.Doe@Elsewhere.example"],
            "team@example.com": ["bob", "alice", "ghost"],
          },
        },
      },
    });
    expect(await send(server, ["info@example.com", "alice@example.com"])).toMatch(/^250/);
    const srs = createSrs({ domain: "fwd.example.com", secrets });
    expect(recipientsOf(queue.messages)).toEqual([
      {
        address: "alice@example.com",
        route: "local",
        original: "info@example.com",
        detail: undefined,
        sender: undefined,
      },
      {
        address: "bob@example.com",
        route: "local",
        original: "info@example.com",
        detail: undefined,
        sender: undefined,
      },
      {
        address: "John.Doe@elsewhere.example",
        route: "forward",
        original: "info@example.com",
        detail: undefined,
        sender: srs.forward("sender@origin.example"),
      },
    ]);
    expect(queue.messages.map((message) => message.route)).toEqual(["local", "forward"]);
  });

  it("maps a whole domain onto a local one, and catches all only where configured", async () => {
    const { server, queue } = await start({
      aliases: { map: { domainAliases: { "example.net": "example.com" }, catchAll: { "example.org": "carol" } } },
    });
    expect(
      await rcpt(server, ["alice@example.net", "nobody@example.net", "anyone@example.org", "anyone@example.com"]),
    ).toEqual(["250 2.1.5", "550 5.1.1", "250 2.1.5", "550 5.1.1"]);
    await send(server, ["alice@example.net", "anyone@example.org"]);
    expect(recipientsOf(queue.messages).map((recipient) => `${recipient.original} → ${recipient.address}`)).toEqual([
      "alice@example.net → alice@example.com",
      "anyone@example.org → carol@example.org",
    ]);
  });

  it("refuses a forwarding loop between two aliases (550 5.4.6) and keeps what else a list holds", async () => {
    const { server } = await start({
      aliases: {
        map: {
          aliases: {
            "a@example.com": "b@example.com",
            "b@example.com": "a@example.com",
            "c@example.com": ["a", "alice"],
          },
        },
      },
    });
    expect(await rcpt(server, ["a@example.com", "b@example.com", "c@example.com"])).toEqual([
      "550 5.4.6",
      "550 5.4.6",
      "250 2.1.5",
    ]);
  });

  it("bounds a list: the directory's limits (550 5.2.4) and core's limits.maxExpansion (550 5.5.3)", async () => {
    const members = (count: number) => Array.from({ length: count }, (_, index) => `m${index}@elsewhere.example`);
    const { server } = await start(
      {
        aliases: { map: { aliases: { "huge@example.com": members(30), "big@example.com": members(4) } } },
        limits: { maxAddresses: 20 },
      },
      3,
    );
    expect(await rcpt(server, ["huge@example.com", "big@example.com", "alice@example.com"])).toEqual([
      "550 5.2.4",
      "550 5.5.3",
      "250 2.1.5",
    ]);
  });

  it("always takes postmaster@ and abuse@ to the configured mailboxes, even when an alias names nobody", async () => {
    const { server, queue } = await start({
      abuse: "abuse-desk@elsewhere.example",
      aliases: { map: { aliases: { "postmaster@example.org": "ghost" } } },
      mailboxes: ["alice@example.com"],
    });
    await send(server, ["postmaster@example.org", "Postmaster", "abuse@example.com"]);
    expect(recipientsOf(queue.messages).map((recipient) => `${recipient.route} ${recipient.address}`)).toEqual([
      "local admin@example.com",
      "forward abuse-desk@elsewhere.example",
    ]);
  });

  it("without a configured postmaster, postmaster@ and abuse@ are their own mailboxes", async () => {
    const { server, queue } = await start({ postmaster: undefined, mailboxes: ["alice@example.com"] });
    expect(
      await rcpt(server, ["postmaster@example.org", "abuse@example.com", "postmaster", "ghost@example.com"]),
    ).toEqual(["250 2.1.5", "250 2.1.5", "250 2.1.5", "550 5.1.1"]);
    await send(server, ["postmaster@example.org", "abuse@example.com", "postmaster"]);
    expect(recipientsOf(queue.messages).map((recipient) => recipient.address)).toEqual([
      "postmaster@example.org",
      "abuse@example.com",
      "postmaster",
    ]);
  });
});

describe("forwarding", () => {
  it("gives a forward the SRS form of MAIL FROM; the null sender stays null; without SRS the sender is kept", async () => {
    const aliases = { map: { aliases: { "info@example.com": ["alice", "friend@elsewhere.example"] } } };
    const { server, queue } = await start({ srs: { domain: "fwd.example.com", secrets }, aliases });
    await send(server, ["info@example.com"], "Someone@Origin.example");
    await send(server, ["info@example.com"], "");
    const senders = recipientsOf(queue.messages)
      .filter((recipient) => recipient.route === "forward")
      .map((recipient) => recipient.sender);
    expect(senders[0]).toMatch(/^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=Origin\.example=Someone@fwd\.example\.com$/);
    expect(senders[1]).toBeUndefined();
    await server.stop();

    const plain = await start({ aliases, routes: { forward: "relay" } });
    await send(plain.server, ["info@example.com"], "someone@origin.example");
    expect(recipientsOf(plain.queue.messages).map(({ route, sender }) => `${route} ${sender}`)).toEqual([
      "local undefined",
      "relay undefined",
    ]);
  });

  it("sends a bounce to our SRS address back to the original sender; a forged one is refused at RCPT", async () => {
    const { server, queue } = await start({
      domains: ["example.com", "example.org", "fwd.example.com"],
      srs: { domain: "fwd.example.com", secrets },
      aliases: { map: { catchAll: { "fwd.example.com": "alice@example.com" } } },
    });
    const srs = createSrs({ domain: "fwd.example.com", secrets });
    const bounceTo = srs.forward("Sender@Origin.example");
    const forged = bounceTo.replace(/^SRS0=[^=]{4}=/, "SRS0=AAAA=");
    expect(await rcpt(server, [bounceTo, forged, "someone@fwd.example.com"], { from: "" })).toEqual([
      "250 2.1.5",
      "550 5.1.1",
      "250 2.1.5",
    ]);
    await send(server, [bounceTo], "");
    expect(recipientsOf(queue.messages)).toEqual([
      { address: "Sender@origin.example", route: "forward", original: bounceTo, detail: undefined, sender: undefined },
    ]);
  });
});

describe("no backscatter", () => {
  it("refuses every unknown recipient at RCPT and stores the message for the others only", async () => {
    const { server, queue } = await start();
    const client = await server.connect();
    try {
      await client.read();
      await client.command("EHLO client.test");
      await client.command("MAIL FROM:<sender@origin.example>");
      expect((await client.command("RCPT TO:<nobody@example.com>")).code).toBe(550);
      expect((await client.command("RCPT TO:<alice@example.com>")).code).toBe(250);
      expect((await client.command("DATA")).code).toBe(354);
      expect((await client.command("Subject: x\r\n\r\nHello.\r\n.")).code).toBe(250);
    } finally {
      client.close();
    }
    expect(recipientsOf(queue.messages).map((recipient) => recipient.address)).toEqual(["alice@example.com"]);
  });
});
