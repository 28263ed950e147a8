// Test support (not exported): each lookup backend's real server, loaded with the same users and
// one list, and the recipients() lookup options that read it — for the tests that run the plugin
// over SMTP against every backend (PostgreSQL through a proxy that can go down, slapd, Dovecot).
import type { RecipientsOptions } from "./options.ts";
import { type DovecotUserdb, startDovecotUserdb } from "./test-dovecot-userdb.ts";
import { admin, databaseUrl, dropSchema, uniqueSchema } from "./test-postgres.ts";
import { readerDn, readerPassword, startSlapd, suffix } from "./test-slapd.ts";
import { startDownableProxy } from "./test-tcp-proxy.ts";

type LookupInput = NonNullable<RecipientsOptions["lookups"]>[number];

/** The users every backend holds. */
export const backendMailboxes = ["alice@example.com", "bob@example.com"];
/** The list team@example.com, in backends that hold lists. */
export const backendTeam = ["alice@example.com", "dave@elsewhere.example"];

export interface RunningBackend {
  /** The lookups recipients() gets (a list lookup first where the backend holds lists). */
  lookups(options: { cache: boolean }): LookupInput[];
  readonly holdsLists: boolean;
  /** The server stops answering; `up` brings it back. */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

export interface Backend {
  readonly name: string;
  start(): Promise<RunningBackend>;
}

const cacheOption = (cache: boolean) => (cache ? {} : { cache: false as const });

const postgres: Backend = {
  name: "postgres",
  async start() {
    const schema = uniqueSchema("recipients_smtp");
    await admin(`CREATE SCHEMA "${schema}"`);
    await admin(`CREATE TABLE "${schema}".users (address text PRIMARY KEY)`);
    await admin(`CREATE TABLE "${schema}".aliases (address text NOT NULL, target text NOT NULL)`);
    for (const mailbox of backendMailboxes) await admin(`INSERT INTO "${schema}".users VALUES ($1)`, [mailbox]);
    for (const target of backendTeam) {
      await admin(`INSERT INTO "${schema}".aliases VALUES ('team@example.com', $1)`, [target]);
    }
    const url = new URL(databaseUrl);
    const proxy = await startDownableProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.host = `127.0.0.1:${proxy.port}`;
    const connectionString = url.toString();
    return {
      holdsLists: true,
      lookups: ({ cache }) => [
        {
          type: "postgres",
          connectionString,
          query: `SELECT target FROM "${schema}".aliases WHERE address = $1`,
          result: "aliases",
          timeoutMs: 2_000,
          ...cacheOption(cache),
        },
        {
          type: "postgres",
          connectionString,
          query: `SELECT address FROM "${schema}".users WHERE address = $1`,
          timeoutMs: 2_000,
          ...cacheOption(cache),
        },
      ],
      down: () => proxy.down(),
      up: () => proxy.up(),
      async stop() {
        await proxy.close();
        await dropSchema(schema);
      },
    };
  },
};

const ldap: Backend = {
  name: "ldap",
  async start() {
    const slapd = await startSlapd();
    await slapd.add([
      ...backendMailboxes.map((mail, index) => ({
        dn: `uid=user${index},ou=people,${suffix}`,
        attributes: { objectClass: "inetOrgPerson", uid: `user${index}`, cn: mail, sn: "User", mail },
      })),
      {
        dn: `cn=team,ou=lists,${suffix}`,
        attributes: {
          objectClass: ["nisMailAlias", "inetLocalMailRecipient"],
          cn: "team",
          mailLocalAddress: "team@example.com",
          rfc822MailMember: backendTeam,
        },
      },
    ]);
    const bind = { url: slapd.url, bindDn: readerDn, bindPassword: readerPassword, timeoutMs: 2_000 };
    return {
      holdsLists: true,
      lookups: ({ cache }) => [
        {
          type: "ldap",
          ...bind,
          base: `ou=lists,${suffix}`,
          filter: "(&(objectClass=nisMailAlias)(mailLocalAddress=%s))",
          result: "aliases",
          attribute: "rfc822MailMember",
          ...cacheOption(cache),
        },
        { type: "ldap", ...bind, base: `ou=people,${suffix}`, filter: "(mail=%s)", ...cacheOption(cache) },
      ],
      down: () => slapd.stop(),
      up: () => slapd.start(),
      stop: () => slapd.remove(),
    };
  },
};

const dovecot: Backend = {
  name: "dovecot",
  async start() {
    const userdb: DovecotUserdb = await startDovecotUserdb(backendMailboxes);
    return {
      holdsLists: false,
      lookups: ({ cache }) => [{ type: "dovecot", socket: userdb.socket, timeoutMs: 2_000, ...cacheOption(cache) }],
      down: () => userdb.stop(),
      up: () => userdb.start(),
      stop: () => userdb.remove(),
    };
  },
};

/** down() and up() said twice do nothing the second time (a test's `finally` may bring it up again). */
function idempotent(backend: Backend): Backend {
  return {
    name: backend.name,
    async start() {
      const running = await backend.start();
      let up = true;
      return {
        ...running,
        lookups: running.lookups,
        holdsLists: running.holdsLists,
        async down() {
          if (up) await running.down();
          up = false;
        },
        async up() {
          if (!up) await running.up();
          up = true;
        },
      };
    },
  };
}

export const backends: readonly Backend[] = [postgres, ldap, dovecot].map(idempotent);
