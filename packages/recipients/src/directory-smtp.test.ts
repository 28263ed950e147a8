// The directory behind real SMTP sessions. Until the plugin is wired to it (core's recipient
// expansion, issue 13), a small test plugin answers RCPT TO the way the plugin will: the refusal
// from refusalFor, or acceptance of a single target with its route.
import { accept, ConfigError, defer, type Plugin } from "@postern/core";
import { startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type Directory, type DirectoryOptions, openDirectory, refusalFor } from "./index.ts";
import { readerDn, readerPassword, type Slapd, startSlapd, suffix } from "./test-slapd.ts";

let server: TestServer | undefined;
let directory: Directory | undefined;
let slapd: Slapd | undefined;
afterEach(async () => {
  await server?.stop();
  await directory?.close();
  await slapd?.remove();
  server = directory = slapd = undefined;
});

function directoryPlugin(open: Directory): Plugin {
  return {
    name: "test:directory",
    hooks: {
      async rcptTo(_transaction, recipient) {
        const expansion = await open.resolve(recipient.address);
        if (expansion.kind !== "deliver") return refusalFor(expansion);
        // Several targets need core's expansion; one target is what today's contract can say.
        if (expansion.targets.length !== 1) return defer("4.3.0", "expansion needs core contract 2");
        return accept({ route: expansion.targets[0]!.route });
      },
    },
  } satisfies Plugin;
}

async function rcpt(test: TestServer, addresses: string[], between?: () => Promise<void>): Promise<string[]> {
  const client = await test.connect();
  try {
    await client.read();
    await client.command("EHLO client.test");
    expect((await client.command("MAIL FROM:<sender@example.org>")).code).toBe(250);
    const replies: string[] = [];
    for (const [index, address] of addresses.entries()) {
      if (index === Math.floor(addresses.length / 2)) await between?.();
      const reply = await client.command(`RCPT TO:<${address}>`);
      replies.push(`${reply.code} ${reply.enhanced ?? ""}`.trim());
    }
    await client.command("QUIT");
    return replies;
  } finally {
    client.close();
  }
}

describe("the directory over SMTP", () => {
  it("answers 451 4.3.0 while LDAP is down mid-session, never 550 for a known user; postmaster still 250", async () => {
    slapd = await startSlapd();
    await slapd.add([
      {
        dn: `uid=alice,ou=people,${suffix}`,
        attributes: { objectClass: "inetOrgPerson", uid: "alice", cn: "Alice", sn: "A", mail: "alice@example.com" },
      },
    ]);
    directory = await openDirectory({
      domains: ["example.com"],
      postmaster: "admin@example.com",
      lookups: [
        {
          type: "ldap",
          url: slapd.url,
          bindDn: readerDn,
          bindPassword: readerPassword,
          base: `ou=people,${suffix}`,
          filter: "(mail=%s)",
          timeoutMs: 2_000,
          cache: false,
        },
      ],
    });
    server = await startTestServer({ plugins: [directoryPlugin(directory)] });
    const replies = await rcpt(
      server,
      ["alice@example.com", "nobody@example.com", "alice@example.com", "nobody@example.com", "postmaster@example.com"],
      () => slapd!.stop(),
    );
    expect(replies).toEqual(["250 2.1.5", "550 5.1.1", "451 4.3.0", "451 4.3.0", "250 2.1.5"]);
    await slapd.start();
    expect(await rcpt(server, ["alice@example.com", "nobody@example.com"])).toEqual(["250 2.1.5", "550 5.1.1"]);
  });

  it("refuses a forwarding loop between two aliases with 550 5.4.6 and an over-long list with 550 5.2.4", async () => {
    directory = await openDirectory({
      domains: ["example.com"],
      postmaster: "admin@example.com",
      aliases: {
        map: {
          aliases: {
            "a@example.com": "b@example.com",
            "b@example.com": "a@example.com",
            "many@example.com": Array.from({ length: 5 }, (_, index) => `m${index}@elsewhere.example`),
          },
        },
      },
      limits: { maxAddresses: 4 },
    });
    server = await startTestServer({ plugins: [directoryPlugin(directory)] });
    expect(await rcpt(server, ["a@example.com", "b@example.com", "many@example.com"])).toEqual([
      "550 5.4.6",
      "550 5.4.6",
      "550 5.2.4",
    ]);
  });
});

describe("directory options", () => {
  const failure = async (options: unknown): Promise<ConfigError> => {
    const error = await openDirectory(options as DirectoryOptions).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    if (error instanceof ConfigError) return error;
    throw new Error(`expected a ConfigError, got ${String(error)}`);
  };
  const valid = { domains: ["example.com"], postmaster: "admin@example.com" };

  it("names the key and what was expected, in one line", async () => {
    const cases: [unknown, string][] = [
      [{ domains: ["example.com"] }, "@postern/recipients.postmaster"],
      [{ ...valid, domains: ["not a domain"] }, "@postern/recipients.domains.0"],
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
      [{ ...valid, limits: { maxDepth: 0 } }, "@postern/recipients.limits.maxDepth"],
      [
        { ...valid, aliases: { map: { aliases: { "x@example.com": 5 } } } },
        "@postern/recipients.aliases.map.aliases.x@example.com",
      ],
      [{ ...valid, lookup: [] }, "@postern/recipients.lookup"],
    ];
    for (const [options, key] of cases) {
      const error = await failure(options);
      expect(error.key, JSON.stringify(options)).toBe(key);
      expect(error.message).not.toContain("\n");
    }
    expect((await failure({ ...valid, lookups: [{ type: "ldapp" }] })).message).toContain(
      'expected a lookup with type "mailboxes", "postgres", "ldap" or "dovecot"',
    );
  });

  it("refuses an alias for a domain that is not local, and an alias target that is no address", async () => {
    const foreign = await failure({ ...valid, aliases: { map: { aliases: { "x@other.example": "alice" } } } });
    expect(foreign.message).toBe(
      "@postern/recipients.aliases.map.aliases.x@other.example: other.example is not one of the local domains",
    );
    const bad = await failure({ ...valid, aliases: { map: { aliases: { "x@example.com": "a b c" } } } });
    expect(bad.message).toContain('"a b c" is not an address or a local name');
  });
});
