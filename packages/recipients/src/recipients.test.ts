import { accept, ConfigError, type Plugin } from "@postern/core";
import { buildMessage, memoryQueue, type SendError, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import recipients, { type RecipientDecision, recipientDecisions } from "./index.ts";
import { recipientsOptionsSchema } from "./options.ts";
import { decideRecipient } from "./policy.ts";
import { networkList } from "./relay-networks.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** Opens a session and answers the RCPT TO of each address, in order. */
async function rcpt(
  test: TestServer,
  addresses: string[],
  options: { auth?: { user: string; pass: string } } = {},
): Promise<string[]> {
  const client = await test.connect();
  try {
    await client.read(); // greeting
    await client.command("EHLO client.test");
    if (options.auth) {
      const token = Buffer.from(`\0${options.auth.user}\0${options.auth.pass}`).toString("base64");
      const authReply = await client.command(`AUTH PLAIN ${token}`);
      expect(authReply.code).toBe(235);
    }
    const mail = await client.command("MAIL FROM:<sender@example.org>");
    expect(mail.code).toBe(250);
    const replies: string[] = [];
    for (const address of addresses) {
      const reply = await client.command(`RCPT TO:<${address}>`);
      replies.push(`${reply.code} ${reply.enhanced ?? ""}`.trim());
    }
    await client.command("QUIT");
    return replies;
  } finally {
    client.close();
  }
}

/** Accepts any AUTH, so tests can be an authenticated session. */
const anyLogin: Plugin = { name: "test:any-login", hooks: { auth: () => accept() } };
const authListener = {
  listeners: [{ address: "127.0.0.1", port: 1, auth: "optional" as const, allowInsecureAuth: true }],
};

describe("local recipients", () => {
  it("accepts a known mailbox with route local and records the decision", async () => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [recipients({ domains: ["example.com"], mailboxes: ["alice@example.com"] }), queue.plugin],
    });
    const result = await server.send({ to: "alice@example.com", raw: buildMessage({ to: "alice@example.com" }) });
    expect(result.response).toMatch(/^250 /);
    const stored = queue.messages[0]!;
    expect(stored.route).toBe("local");
    expect(stored.transaction.results.get(recipientDecisions)).toEqual([
      { address: "alice@example.com", outcome: "local", mailbox: "alice@example.com", match: "mailbox" },
    ]);
  });

  it("refuses an unknown user of a local domain at RCPT with 550 5.1.1", async () => {
    server = await startTestServer({
      plugins: [recipients({ domains: ["example.com"], mailboxes: ["alice@example.com"] })],
    });
    expect(await rcpt(server, ["bob@example.com", "alice@example.com"])).toEqual(["550 5.1.1", "250 2.1.5"]);
  });

  it("always accepts postmaster of every local domain and the bare postmaster", async () => {
    server = await startTestServer({
      plugins: [recipients({ domains: ["a.example", "b.example"], mailboxes: ["alice@a.example"] })],
    });
    expect(
      await rcpt(server, ["postmaster@a.example", "PostMaster@B.example", "postmaster", "POSTMASTER", "bob@b.example"]),
    ).toEqual(["250 2.1.5", "250 2.1.5", "250 2.1.5", "250 2.1.5", "550 5.1.1"]);
  });

  it("accepts any user of a domain with a catch-all, only listed users elsewhere", async () => {
    server = await startTestServer({
      plugins: [recipients({ domains: ["a.example", "b.example"], mailboxes: ["alice@a.example", "*@b.example"] })],
    });
    expect(await rcpt(server, ["anyone@b.example", "x.y+z@b.example", "anyone@a.example"])).toEqual([
      "250 2.1.5",
      "250 2.1.5",
      "550 5.1.1",
    ]);
  });

  it("accepts every user of a local domain when no mailboxes are listed, but no path-like local part", async () => {
    server = await startTestServer({ plugins: [recipients({ domains: ["localhost"] })] });
    expect(await rcpt(server, ["whoever@localhost", "a/b@localhost", '"quoted"@localhost'])).toEqual([
      "250 2.1.5",
      "550 5.1.1",
      "550 5.1.1",
    ]);
  });

  it("matches domains case-insensitively and in either IDN form", async () => {
    server = await startTestServer({
      plugins: [
        recipients({
          domains: ["Example.COM", "bücher.example"],
          mailboxes: ["Alice@example.com", "*@bücher.example"],
        }),
      ],
    });
    expect(await rcpt(server, ["alice@EXAMPLE.com", "ALICE@example.COM", "leser@xn--bcher-kva.example"])).toEqual([
      "250 2.1.5",
      "250 2.1.5",
      "250 2.1.5",
    ]);
  });

  it("refuses address literals with 550 5.1.2", async () => {
    server = await startTestServer({
      plugins: [recipients({ domains: ["localhost"], relay: { networks: ["127.0.0.0/8"] } })],
    });
    expect(await rcpt(server, ["user@[127.0.0.1]", "user@[IPv6:::1]"])).toEqual(["550 5.1.2", "550 5.1.2"]);
  });
});

describe("relay", () => {
  it("is denied by default: core answers 550 5.7.1", async () => {
    server = await startTestServer({ plugins: [recipients({ domains: ["localhost"] })] });
    expect(await rcpt(server, ["someone@elsewhere.example"])).toEqual(["550 5.7.1"]);
    const error = await server.send({ to: "someone@elsewhere.example", raw: buildMessage() }).then(
      () => undefined,
      (caught: SendError) => caught,
    );
    expect(error?.responseCode).toBe(550);
  });

  it("is allowed from a trusted network, not from another", async () => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [
        recipients({ domains: ["localhost"], relay: { networks: ["10.0.0.0/8", "127.0.0.0/8"] } }),
        queue.plugin,
      ],
    });
    const result = await server.send({ to: "someone@elsewhere.example", raw: buildMessage() });
    expect(result.response).toMatch(/^250 /);
    expect(queue.messages[0]!.route).toBe("relay");
    expect(queue.messages[0]!.transaction.results.get(recipientDecisions)).toEqual([
      { address: "someone@elsewhere.example", outcome: "relay", reason: "network" },
    ]);
    await server.stop();

    server = await startTestServer({
      plugins: [recipients({ domains: ["localhost"], relay: { networks: ["10.0.0.0/8", "2001:db8::/32"] } })],
    });
    expect(await rcpt(server, ["someone@elsewhere.example"])).toEqual(["550 5.7.1"]);
  });

  it("is allowed for an authenticated session, unless turned off", async () => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [anyLogin, recipients({ domains: ["localhost"] }), queue.plugin],
      config: authListener,
    });
    expect(await rcpt(server, ["someone@elsewhere.example"])).toEqual(["550 5.7.1"]);
    const result = await server.send({
      to: "someone@elsewhere.example",
      raw: buildMessage(),
      auth: { user: "alice", pass: "secret" },
    });
    expect(result.response).toMatch(/^250 /);
    expect(queue.messages[0]!.route).toBe("relay");
    expect(queue.messages[0]!.transaction.results.get(recipientDecisions)?.[0]).toMatchObject({
      outcome: "relay",
      reason: "authenticated",
    });
    await server.stop();

    server = await startTestServer({
      plugins: [anyLogin, recipients({ domains: ["localhost"], relay: { authenticated: false } })],
      config: authListener,
    });
    expect(await rcpt(server, ["someone@elsewhere.example"], { auth: { user: "alice", pass: "x" } })).toEqual([
      "550 5.7.1",
    ]);
  });
});

describe("policy details", () => {
  it("refuses malformed addresses as syntax errors", () => {
    const options = recipientsOptionsSchema.parse({ domains: ["localhost"] });
    const decide = (address: string): RecipientDecision =>
      decideRecipient(options, () => true, address, { remoteAddress: "127.0.0.1", user: undefined });
    for (const address of ["user@", "@localhost", "nodomain", "user@bad domain", "user@-x.example"]) {
      expect(decide(address)).toEqual({ address, outcome: "refused", reason: "malformed" });
    }
  });

  // smtp-server reports IPv4-mapped peers in plain IPv4 form, but a PROXY header or another front
  // end may not, so the matcher is checked on its own.
  it("matches networks of both families, including IPv4-mapped and zoned addresses", () => {
    const trusted = networkList(
      ["192.0.2.0/24", "2001:db8::/32", "fe80::1"].map(
        (text) => recipientsOptionsSchema.parse({ domains: [], relay: { networks: [text] } }).relay.networks[0]!,
      ),
    );
    expect(["192.0.2.7", "::ffff:192.0.2.7", "2001:db8:1::5", "fe80::1%eth0"].map(trusted)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(["192.0.3.1", "2001:db9::1", "fe80::2", "not-an-ip"].map(trusted)).toEqual([false, false, false, false]);
  });
});

describe("options", () => {
  const failure = (options: unknown): ConfigError => {
    try {
      recipients(options as never);
    } catch (error) {
      if (error instanceof ConfigError) return error;
      throw error;
    }
    throw new Error("expected a ConfigError");
  };

  it("names the offending key", () => {
    expect(failure({}).key).toBe("@postern/recipients.domains");
    expect(failure({ domains: ["example.com", "not a domain"] }).key).toBe("@postern/recipients.domains.1");
    expect(failure({ domains: ["example.com"], mailboxes: ["bob@other.example"] }).key).toBe(
      "@postern/recipients.mailboxes.0",
    );
    expect(failure({ domains: ["example.com"], mailboxes: ["no-at-sign"] }).key).toBe(
      "@postern/recipients.mailboxes.0",
    );
    const network = failure({ domains: ["example.com"], relay: { networks: ["10.0.0.0/8", "10.0.0.0/33"] } });
    expect(network.key).toBe("@postern/recipients.relay.networks.1");
    expect(network.message).toContain("CIDR");
    expect(failure({ domains: [], relay: { networks: ["fe80::/64%eth0"] } }).key).toBe(
      "@postern/recipients.relay.networks.0",
    );
    expect(failure({ domains: [], relay: { networks: ["fe80::1%eth0"] } }).key).toBe(
      "@postern/recipients.relay.networks.0",
    );
    expect(failure({ domains: ["example.com"], relay: { authenticated: "yes" } }).key).toBe(
      "@postern/recipients.relay.authenticated",
    );
  });

  it("refuses unknown keys (a typo must not silently open or close anything)", () => {
    expect(failure({ domains: ["example.com"], mailbox: ["a@example.com"] }).message).toContain("mailbox");
  });
});
