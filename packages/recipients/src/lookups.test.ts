// Every lookup backend against its real server through the one conformance suite, then what is
// particular to each (PostgreSQL parameters and query errors, LDAP binds and lists, Dovecot FAIL).
import { describe, expect, it } from "vitest";
import { dovecotLookup } from "./dovecot-userdb.ts";
import { ldapLookup } from "./ldap-lookup.ts";
import { postgresLookup } from "./postgres-lookup.ts";
import { lookupAddress } from "./resolution.ts";
import { type DovecotUserdb, startDovecotUserdb } from "./test-dovecot-userdb.ts";
import { conformanceMailboxes, conformanceTeam, describeLookupConformance } from "./test-lookup-conformance.ts";
import { admin, databaseUrl, dropSchema, uniqueSchema } from "./test-postgres.ts";
import { readerDn, readerPassword, type Slapd, startSlapd, suffix } from "./test-slapd.ts";
import { type DownableProxy, startDownableProxy } from "./test-tcp-proxy.ts";

const at = (text: string) => lookupAddress(text)!;

// PostgreSQL: the machine's server, a schema of our own, reached through a proxy that can go down.
{
  const schema = uniqueSchema("recipients");
  let proxy: DownableProxy;
  const through = () => {
    const url = new URL(databaseUrl);
    url.host = `127.0.0.1:${proxy.port}`;
    return url.toString();
  };
  describeLookupConformance("postgres", {
    async start() {
      await admin(`CREATE SCHEMA "${schema}"`);
      await admin(`CREATE TABLE "${schema}".users (address text PRIMARY KEY, active boolean NOT NULL DEFAULT true)`);
      await admin(`CREATE TABLE "${schema}".aliases (address text NOT NULL, target text NOT NULL)`);
      for (const mailbox of conformanceMailboxes)
        await admin(`INSERT INTO "${schema}".users (address) VALUES ($1)`, [mailbox]);
      await admin(`INSERT INTO "${schema}".users (address, active) VALUES ('disabled@example.com', false)`);
      for (const target of conformanceTeam) {
        await admin(`INSERT INTO "${schema}".aliases VALUES ('team@example.com', $1)`, [target]);
      }
      const url = new URL(databaseUrl);
      proxy = await startDownableProxy({ host: url.hostname, port: Number(url.port || 5432) });
    },
    mailboxes: () =>
      postgresLookup({
        connectionString: through(),
        query: `SELECT address FROM "${schema}".users WHERE address = $1 AND active`,
        timeoutMs: 2_000,
      }),
    aliases: () =>
      postgresLookup({
        connectionString: through(),
        query: `SELECT target FROM "${schema}".aliases WHERE address = $1`,
        result: "aliases",
        timeoutMs: 2_000,
      }),
    down: () => proxy.down(),
    up: () => proxy.up(),
    async stop() {
      await proxy?.close();
      await dropSchema(schema);
    },
  });

  describe("postgres specifics", () => {
    it("passes the local part and domain as parameters, and answers tempfail for a broken query", async () => {
      const split = uniqueSchema("recipients_split");
      await admin(`CREATE SCHEMA "${split}"`);
      await admin(`CREATE TABLE "${split}".users (local text, domain text, mailbox text)`);
      await admin(`INSERT INTO "${split}".users VALUES ('info', 'example.com', 'alice@example.com')`);
      const lookup = postgresLookup({
        connectionString: databaseUrl,
        query: `SELECT mailbox FROM "${split}".users WHERE local = $1 AND domain = $2`,
        parameters: ["localPart", "domain"],
      });
      try {
        expect(await lookup.resolve(at("Info@Example.com"))).toEqual({ kind: "mailbox", mailbox: "alice@example.com" });
        await admin(`ALTER TABLE "${split}".users RENAME TO gone`);
        const broken = await lookup.resolve(at("info@example.com"));
        expect(broken.kind).toBe("tempfail");
        expect(broken.kind === "tempfail" && broken.cause.message).toMatch(
          /^postgres 127\.0\.0\.1:5432\/test: (error: )?relation .* does not exist/,
        );
      } finally {
        await lookup.close?.();
        await dropSchema(split);
      }
    });
  });
}

// LDAP: a slapd of our own, users as inetOrgPerson with mailLocalAddress aliases, a list as nisMailAlias.
{
  let slapd: Slapd;
  const people = `ou=people,${suffix}`;
  const mailboxes = () =>
    ldapLookup({
      url: slapd.url,
      bindDn: readerDn,
      bindPassword: readerPassword,
      base: people,
      filter: "(&(objectClass=inetOrgPerson)(|(mail=%s)(mailLocalAddress=%s)))",
      timeoutMs: 2_000,
    });
  describeLookupConformance("ldap", {
    async start() {
      slapd = await startSlapd();
      await slapd.add(
        conformanceMailboxes.map((mail, index) => ({
          dn: `uid=user${index},${people}`,
          attributes: {
            objectClass: ["inetOrgPerson", "inetLocalMailRecipient"],
            uid: `user${index}`,
            cn: mail,
            sn: "User",
            mail,
          },
        })),
      );
      await slapd.add([
        {
          dn: `cn=team,ou=lists,${suffix}`,
          attributes: {
            objectClass: ["nisMailAlias", "inetLocalMailRecipient"],
            cn: "team",
            mailLocalAddress: "team@example.com",
            rfc822MailMember: conformanceTeam,
          },
        },
      ]);
    },
    mailboxes,
    aliases: () =>
      ldapLookup({
        url: slapd.url,
        bindDn: readerDn,
        bindPassword: readerPassword,
        base: `ou=lists,${suffix}`,
        filter: "(&(objectClass=nisMailAlias)(mailLocalAddress=%s))",
        result: "aliases",
        attribute: "rfc822MailMember",
        timeoutMs: 2_000,
      }),
    down: () => slapd.stop(),
    up: () => slapd.start(),
    stop: async () => slapd?.remove(),
  });

  describe("ldap specifics", () => {
    it("finds a user by a second address, and answers tempfail when the bind is refused", async () => {
      slapd = await startSlapd(); // the conformance suite removed its own
      try {
        await slapd.add([
          {
            dn: `uid=erin,${people}`,
            attributes: {
              objectClass: ["inetOrgPerson", "inetLocalMailRecipient"],
              uid: "erin",
              cn: "Erin",
              sn: "E",
              mail: "erin@example.com",
              mailLocalAddress: ["e.smith@example.com"],
            },
          },
        ]);
        const lookup = mailboxes();
        expect(await lookup.resolve(at("e.smith@example.com"))).toEqual({
          kind: "mailbox",
          mailbox: "erin@example.com",
        });
        await lookup.close?.();
        const refused = ldapLookup({
          url: slapd.url,
          bindDn: readerDn,
          bindPassword: "wrong",
          base: people,
          filter: "(mail=%s)",
        });
        const answer = await refused.resolve(at("erin@example.com"));
        expect(answer.kind).toBe("tempfail");
        expect(answer.kind === "tempfail" && answer.cause.message).toMatch(/InvalidCredentialsError/);
        await refused.close?.();
      } finally {
        await slapd.remove();
      }
    });
  });
}

// Dovecot: its auth process alone, users in a passwd-file, asked over the auth-userdb socket.
{
  let userdb: DovecotUserdb;
  describeLookupConformance("dovecot", {
    async start() {
      userdb = await startDovecotUserdb(conformanceMailboxes);
    },
    mailboxes: () => dovecotLookup({ socket: userdb.socket, timeoutMs: 2_000 }),
    down: () => userdb.stop(),
    up: () => userdb.start(),
    stop: async () => userdb?.remove(),
  });

  describe("dovecot specifics", () => {
    it("answers tempfail when Dovecot's own userdb fails (FAIL), and local-part user names", async () => {
      const users = await startDovecotUserdb(["frank"]);
      const lookup = dovecotLookup({ socket: users.socket, username: "localPart" });
      try {
        expect(await lookup.resolve(at("Frank@example.net"))).toEqual({
          kind: "mailbox",
          mailbox: "frank@example.net",
        });
        await users.breakUsers();
        const failed = await lookup.resolve(at("grace@example.net"));
        expect(failed.kind).toBe("tempfail");
      } finally {
        await lookup.close?.();
        await users.remove();
      }
    });
  });
}
