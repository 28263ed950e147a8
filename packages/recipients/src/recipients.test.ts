// The plugin's basic rules over real SMTP: local domains and mailboxes, postmaster, every user of a
// domain, IDNs, address literals, relay by network or AUTH, the decisions it records, option errors.
import { accept, ConfigError, type Plugin } from "@postern/core";
import { buildMessage, memoryQueue, type SendError, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import recipients, { recipientDecisions } from "./index.ts";
import { rcpt } from "./test-smtp.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

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
    expect(stored.recipients).toEqual(["alice@example.com"]);
    expect(stored.transaction.results.get(recipientDecisions)).toEqual([
      {
        address: "alice@example.com",
        outcome: "local",
        targets: [
          {
            address: "alice@example.com",
            kind: "mailbox",
            route: "local",
            via: ["alice@example.com"],
          },
        ],
        dropped: [],
      },
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

  it("warns once at start when it accepts every local part by default, not when told to with *@domain", async () => {
    const warnings = (test: TestServer) =>
      test.logs.filter((line) => line.plugin === "@postern/recipients" && line.level === 40).map((line) => line.msg);
    server = await startTestServer({ plugins: [recipients({ domains: ["localhost"] })] });
    await rcpt(server, ["whoever@localhost", "someone@localhost"]);
    expect(warnings(server)).toEqual([expect.stringMatching(/^no mailboxes and no lookups: every local part/)]);
    expect(server.logs.find((line) => line.level === 40 && line.plugin === "@postern/recipients")?.domains).toEqual([
      "localhost",
    ]);
    await server.stop();
    server = await startTestServer({ plugins: [recipients({ domains: ["localhost"], mailboxes: ["*@localhost"] })] });
    expect(await rcpt(server, ["whoever@localhost"])).toEqual(["250 2.1.5"]);
    expect(warnings(server)).toEqual([]);
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

describe("addresses no SMTP client can send", () => {
  // smtp-server refuses malformed RCPT TO arguments itself; a data hook adding a recipient
  // (SMFIR_ADDRCPT) goes through the rcptTo hooks with whatever it was given.
  it("refuses a malformed address as a syntax error (501 5.1.3), and a quoted local part as unknown", async () => {
    const outcomes: string[] = [];
    const adder: Plugin = {
      name: "test:add-recipients",
      hooks: {
        async data(transaction) {
          for (const address of ["user@-x.example", "user@bad_domain", '"a b"@localhost', "bob+x@localhost"]) {
            const outcome = await transaction.addRecipient(address);
            outcomes.push(
              outcome.ok
                ? `ok ${outcome.recipients.map((recipient) => `${recipient.address}/${recipient.detail}`).join(",")}`
                : `${outcome.refusal.code} ${outcome.refusal.status}`,
            );
          }
          return undefined;
        },
      },
    };
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [recipients({ domains: ["localhost"] }), adder, queue.plugin] });
    await server.send({ to: "alice@localhost", raw: buildMessage({ to: "alice@localhost" }) });
    expect(outcomes).toEqual(["501 5.1.3", "501 5.1.3", "550 5.1.1", "ok bob@localhost/x"]);
    expect(queue.messages[0]!.recipients).toEqual(["alice@localhost", "bob@localhost"]);
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
    throw new Error(`expected a ConfigError for ${JSON.stringify(options)}`);
  };
  const valid = { domains: ["example.com"] };

  it("names the offending key and what was expected, in one line", () => {
    const cases: [unknown, string][] = [
      [{}, "@postern/recipients.domains"],
      [{ domains: ["example.com", "not a domain"] }, "@postern/recipients.domains.1"],
      [{ ...valid, mailboxes: ["bob@other.example"] }, "@postern/recipients.mailboxes.0"],
      [{ ...valid, mailboxes: ["no-at-sign"] }, "@postern/recipients.mailboxes.0"],
      [{ ...valid, relay: { networks: ["10.0.0.0/8", "10.0.0.0/33"] } }, "@postern/recipients.relay.networks.1"],
      [{ domains: [], relay: { networks: ["fe80::/64%eth0"] } }, "@postern/recipients.relay.networks.0"],
      [{ domains: [], relay: { networks: ["fe80::1%eth0"] } }, "@postern/recipients.relay.networks.0"],
      [{ ...valid, relay: { authenticated: "yes" } }, "@postern/recipients.relay.authenticated"],
      [{ ...valid, postmaster: "nobody" }, "@postern/recipients.postmaster"],
      [{ ...valid, lookups: [{ type: "ldapp" }] }, "@postern/recipients.lookups.0.type"],
      [
        { ...valid, lookups: [{ type: "postgres", connectionString: "postgres://x/y", query: "SELECT 1" }] },
        "@postern/recipients.lookups.0.query",
      ],
      [
        { ...valid, lookups: [{ type: "ldap", url: "ldap://h", base: "dc=x", filter: "mail=%s" }] },
        "@postern/recipients.lookups.0.filter",
      ],
      [
        { ...valid, lookups: [{ type: "dovecot", socket: "/run/x", cache: { ttlMs: -1 } }] },
        "@postern/recipients.lookups.0.cache.ttlMs",
      ],
      [{ ...valid, srs: { domain: "fwd.example" } }, "@postern/recipients.srs.secrets"],
      [{ ...valid, srs: { domain: "fwd.example", secrets: ["short"] } }, "@postern/recipients.srs.secrets.0"],
      [
        { ...valid, srs: { domain: "fwd.example", secrets: ["long enough"], hashLength: 4, hashMinLength: 6 } },
        "@postern/recipients.srs.hashMinLength",
      ],
      [{ ...valid, limits: { maxDepth: 0 } }, "@postern/recipients.limits.maxDepth"],
      [{ ...valid, routes: { forward: "" } }, "@postern/recipients.routes.forward"],
      [
        { ...valid, aliases: { map: { aliases: { "x@example.com": 5 } } } },
        "@postern/recipients.aliases.map.aliases.x@example.com",
      ],
      [{ ...valid, lookup: [] }, "@postern/recipients.lookup"],
      [{ ...valid, mailbox: ["a@example.com"] }, "@postern/recipients.mailbox"],
    ];
    for (const [options, key] of cases) {
      const error = failure(options);
      expect(error.key, JSON.stringify(options)).toBe(key);
      expect(error.message).not.toContain("\n");
    }
    expect(failure({ ...valid, relay: { networks: ["10.0.0.0/33"] } }).message).toContain("CIDR");
    expect(failure({ ...valid, lookups: [{ type: "ldapp" }] }).message).toContain(
      'expected a lookup with type "mailboxes", "postgres", "ldap" or "dovecot"',
    );
    // A typo must not silently open or close anything.
    expect(failure({ ...valid, mailbox: ["a@example.com"] }).message).toContain("unknown setting");
  });

  it("refuses, when the server starts, an alias of a domain that is not local and a target that is no address", async () => {
    const startError = async (options: Parameters<typeof recipients>[0]) =>
      startTestServer({ plugins: [recipients(options)] }).then(
        async (started) => {
          await started.stop();
          return undefined;
        },
        (caught: unknown) => caught as Error,
      );
    const foreign = await startError({ ...valid, aliases: { map: { aliases: { "x@other.example": "alice" } } } });
    expect(foreign?.message).toContain(
      "@postern/recipients.aliases.map.aliases.x@other.example: other.example is not one of the local domains",
    );
    const bad = await startError({ ...valid, aliases: { map: { aliases: { "x@example.com": "a b c" } } } });
    expect(bad?.message).toContain('"a b c" is not an address or a local name');
  });
});
