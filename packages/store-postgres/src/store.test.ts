// PostgreSQL-specific behaviour: a connection killed mid-delivery, nodes migrating at once, the
// read API and retention. Runs against the real server at DATABASE_URL, one schema per test.
import { type Plugin, PosternError } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  largeMessageStream,
  type SendError,
  sendStream,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import storePostgres, { openPostgresMailStore, type PostgresMailStore } from "./index.ts";
import { admin, databaseUrl, dropSchema, tableCounts, uniqueSchema } from "./test-database.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function schemaFor(prefix: string): Promise<{ schema: string; reader: PostgresMailStore }> {
  const schema = uniqueSchema(prefix);
  const reader = openPostgresMailStore({ connectionString: databaseUrl, schema });
  cleanups.push(async () => {
    await reader.close();
    await dropSchema(schema);
  });
  return { schema, reader };
}

async function serve(...plugins: Plugin[]): Promise<TestServer> {
  const server = await startTestServer({
    plugins: [claimRecipients(), ...plugins],
    config: { limits: { maxMessageSize: "64MB" } },
  });
  cleanups.push(() => server.stop());
  return server;
}

async function refusal(promise: Promise<unknown>): Promise<SendError> {
  const error = await promise.then(
    () => undefined,
    (caught: SendError) => caught,
  );
  expect(error, "the message was accepted").toBeDefined();
  return error!;
}

describe("a PostgreSQL connection killed during delivery", () => {
  it("answers 451 4.3.0, stores nothing, and the next delivery works", async () => {
    const { schema, reader } = await schemaFor("kill");
    const applicationName = `postern-kill-${schema}`;
    // Small chunks: the delivery is a long run of inserts, so the kill lands in the middle.
    const server = await serve(
      storePostgres({ connectionString: databaseUrl, schema, chunkSize: "16KB", applicationName }),
    );
    const large = largeMessageStream("killed", "alice@example.test", 16 * 1024 * 1024);
    // Its refusal is awaited below, after the kill; refusal() runs now so the rejection, which can
    // come while the loop still waits on PostgreSQL, is never unhandled.
    const refused = refusal(sendStream(server.port, "alice@example.test", large.stream));

    // From another connection, like an operator or a failover: find the store's backend while its
    // transaction is open and has written chunks, and terminate it.
    let killed = false;
    const deadline = Date.now() + 120_000;
    while (!killed && Date.now() < deadline) {
      const { rows } = await admin<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
          WHERE application_name = $1 AND xact_start IS NOT NULL AND query ILIKE '%message_chunks%'`,
        [applicationName],
      );
      if (rows.length > 0) {
        const chunks = await admin<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1`,
          [applicationName],
        );
        expect(Number(chunks.rows[0]!.n)).toBeGreaterThan(0);
        await admin("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);
        killed = true;
      } else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(killed, "never saw the delivery's transaction").toBe(true);

    const error = await refused;
    expect(error.responseCode).toBe(451);
    expect(error.response).toMatch(/^451 4\.3\.0 /);
    expect(await tableCounts(schema)).toEqual({ messages: 0, chunks: 0, deliveries: 0 });
    expect(await reader.list("alice@example.test")).toEqual([]);

    // The pool dropped the dead connection: the retry is stored whole.
    const raw = buildMessage({ to: "alice@example.test", subject: "after the kill" });
    await server.send({ to: "alice@example.test", raw });
    const copies = await reader.list("alice@example.test");
    expect(copies).toHaveLength(1);
    expect(copies[0]!.subject).toBe("after the kill");
    const stored = await reader.read(copies[0]!.id);
    expect(stored.subarray(stored.length - raw.length).equals(raw)).toBe(true);
  }, 180_000);
});

describe("migrations", () => {
  it("two nodes starting at once apply each migration once", async () => {
    const { schema } = await schemaFor("migrate");
    const nodes = [0, 1, 2].map(() => storePostgres({ connectionString: databaseUrl, schema }));
    const servers = await Promise.all(nodes.map((node) => serve(node)));
    expect(servers).toHaveLength(3);
    const { rows } = await admin<{ version: number; n: string }>(
      `SELECT version, count(*) AS n FROM "${schema}".schema_migrations GROUP BY version ORDER BY version`,
    );
    expect(rows.map((row) => [row.version, Number(row.n)])).toEqual([[1, 1]]);
    // Starting again later finds nothing to do.
    await serve(storePostgres({ connectionString: databaseUrl, schema }));
    const again = await admin<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".schema_migrations`);
    expect(Number(again.rows[0]!.n)).toBe(1);
  });

  it("refuses to start when the database cannot be reached, naming the plugin", async () => {
    const server = startTestServer({
      plugins: [claimRecipients(), storePostgres({ connectionString: "postgres://postgres@127.0.0.1:9/none" })],
    });
    const failure = await server.then(
      (started) => {
        cleanups.push(() => started.stop());
        return undefined;
      },
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(PosternError);
    expect((failure as PosternError).code).toBe("POSTERN_SETUP_FAILED");
    expect((failure as Error).message).toMatch(/@postern\/store-postgres failed to set up: .*ECONNREFUSED/);
  });
});

describe("options", () => {
  it("reports a bad option in one line naming the key", () => {
    expect(() => storePostgres({ connectionString: databaseUrl, schema: "Bad-Name" })).toThrow(
      /^@postern\/store-postgres\.schema: expected a lower-case SQL identifier/,
    );
    expect(() => storePostgres({ connectionString: databaseUrl, chunkSize: "1KB" })).toThrow(
      /^@postern\/store-postgres\.chunkSize: expected a chunk size from 4KB to 64MB/,
    );
    expect(() => storePostgres({ connectionString: databaseUrl, retention: { days: -1 } })).toThrow(
      /^@postern\/store-postgres\.retention\.days: /,
    );
  });
});

describe("the read API", () => {
  it("lists a mailbox in pages, streams a message and deletes copies", async () => {
    const { schema, reader } = await schemaFor("readapi");
    const server = await serve(storePostgres({ connectionString: databaseUrl, schema }));
    for (const subject of ["one", "two", "three"]) {
      await server.send({
        to: ["Alice@Example.TEST", "bob@example.test"],
        raw: buildMessage({ subject, text: `${subject}\n` }),
      });
    }
    const page1 = await reader.list("alice@example.test", { limit: 2 });
    expect(page1.map((copy) => copy.subject)).toEqual(["one", "two"]);
    const page2 = await reader.list("alice@example.test", { limit: 2, after: page1[1]!.id });
    expect(page2.map((copy) => copy.subject)).toEqual(["three"]);
    const first = page1[0]!;
    expect(first).toMatchObject({
      mailbox: "alice@example.test",
      recipient: "Alice@example.test", // nodemailer lower-cases the domain of the envelope
      route: "local",
      mailFrom: "sender@example.org",
      clientAddress: "127.0.0.1",
      clientHelo: "client.test",
      receivedBy: "mx.test",
    });
    const chunks: Buffer[] = [];
    for await (const chunk of reader.stream(first.id)) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    expect(bytes.length).toBe(first.size);
    expect(bytes.toString()).toMatch(/^Received: from client\.test/);
    expect(bytes.toString()).toContain("Subject: one\r\n");

    // Both recipients share one stored message; it goes with its last copy.
    const bobs = await reader.list("bob@example.test");
    const bobFirst = bobs.find((copy) => copy.messageId === first.messageId)!;
    expect(await reader.delete(first.id)).toBe(true);
    expect(await reader.delete(first.id)).toBe(false);
    expect(await reader.get(first.id)).toBeUndefined();
    expect((await reader.read(bobFirst.id)).equals(bytes)).toBe(true);
    expect(await reader.delete(bobFirst.id)).toBe(true);
    expect(await tableCounts(schema)).toMatchObject({ messages: 2, deliveries: 4 });
    await expect(reader.read(bobFirst.id)).rejects.toThrow(/no stored message/);
  });

  it("deletes messages older than N days, and the plugin's retention option does it on its own", async () => {
    const { schema, reader } = await schemaFor("retention");
    const server = await serve(storePostgres({ connectionString: databaseUrl, schema }));
    for (const subject of ["old", "new"]) {
      await server.send({ to: "alice@example.test", raw: buildMessage({ subject }) });
    }
    await admin(`UPDATE "${schema}".messages SET received_at = now() - interval '10 days' WHERE subject = 'old'`);
    expect(await reader.deleteOlderThan(30)).toBe(0);
    expect(await reader.deleteOlderThan(7)).toBe(1);
    expect((await reader.list("alice@example.test")).map((copy) => copy.subject)).toEqual(["new"]);
    expect(await tableCounts(schema)).toMatchObject({ messages: 1, deliveries: 1 });

    await server.send({ to: "alice@example.test", raw: buildMessage({ subject: "old again" }) });
    await admin(`UPDATE "${schema}".messages SET received_at = now() - interval '10 days' WHERE subject = 'old again'`);
    // A second node with retention sweeps at startup (and then every intervalMinutes).
    await serve(storePostgres({ connectionString: databaseUrl, schema, retention: { days: 7 } }));
    const deadline = Date.now() + 10_000;
    while ((await tableCounts(schema)).messages > 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await reader.list("alice@example.test")).map((copy) => copy.subject)).toEqual(["new"]);
  });
});
