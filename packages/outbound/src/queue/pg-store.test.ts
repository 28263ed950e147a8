// PostgreSQL store specifics: bodies as chunk rows (byte-exact, written and read incrementally,
// never whole in memory) and the migration of schemas whose messages kept their body in a column.
// The shared behaviour is in queue-store.test.ts.
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buildMessage, bulkyText, claimRecipients, startFakeDns, startTestServer } from "@postern/testing";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import outbound from "../index.ts";
import { chunked, PgQueueStore } from "./pg-store.ts";
import type { MessageEnvelope } from "./store.ts";

const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const chunkSize = 64 * 1024;

/** What the store's connections send: every query text, in order, with the moment's source position. */
interface QueryLog {
  texts: string[];
  onQuery?: ((text: string) => void) | undefined;
}

/** A pool whose clients report each query: the test watches the store's SQL, the database is real. */
function instrumentedPool(log: QueryLog): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  pool.on("error", () => undefined);
  const wrapped = new WeakSet<pg.PoolClient>();
  pool.on("acquire", (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const first = args[0];
      const text = typeof first === "string" ? first : (first as { text?: string }).text;
      if (text) {
        log.texts.push(text);
        log.onQuery?.(text);
      }
      return query(...args);
    };
  });
  return pool;
}

let sequence = 0;
function envelope(size: number): MessageEnvelope {
  sequence++;
  return {
    id: `PG${Date.now().toString(36).toUpperCase()}${sequence}${randomBytes(3).toString("hex").toUpperCase()}`,
    from: "sender@example.com",
    createdAt: Date.now(),
    size,
    requireTls: false,
    smtpUtf8: false,
    bodyType: "8bitmime",
    kind: "relay",
  };
}

/** Yields `bytes` in pieces of `piece` bytes, counting what has been pulled so far. */
function countingSource(bytes: Buffer, piece: number): { stream: Readable; pulled(): number } {
  let pulled = 0;
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let offset = 0; offset < bytes.length; offset += piece) {
      const part = bytes.subarray(offset, offset + piece);
      pulled += part.length;
      yield part;
    }
  }
  // A small byte buffer, so read-ahead is bounded and the test measures the store, not the stream.
  return { stream: Readable.from(pieces(), { objectMode: false, highWaterMark: 16 * 1024 }), pulled: () => pulled };
}

async function readAll(stream: Readable, sizes?: number[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    sizes?.push(chunk.length);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

describe("PostgreSQL queue store: readiness", () => {
  it("is not ready, naming why, while its database does not answer", async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    const store = new PgQueueStore({ connectionString: "postgres://postgres@127.0.0.1:1/test", schema: "unreachable" });
    try {
      await expect(store.ready()).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await store.close();
    }
  });
});

describe("PostgreSQL queue store: bodies as chunk rows", () => {
  const schema = `outbound_pgchunks_${randomBytes(4).toString("hex")}`;
  const log: QueryLog = { texts: [] };
  let pool: pg.Pool;
  let store: PgQueueStore;

  beforeAll(async () => {
    pool = instrumentedPool(log);
    store = new PgQueueStore({ pool, schema, chunkSize });
    await store.open();
  });

  afterAll(async () => {
    await store?.close();
    await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool?.end();
  });

  const chunkRows = async (id: string) =>
    (
      await pool.query<{ seq: number; length: number }>(
        `SELECT seq, octet_length(data) AS length FROM "${schema}".message_chunks WHERE message_id = $1 ORDER BY seq`,
        [id],
      )
    ).rows;

  it("gets a message of up to one chunk from the queue hook as a Buffer (one statement), a larger one as a stream", async () => {
    const dns = await startFakeDns({});
    // A second store on the same pool and schema: the plugin opens and closes its own.
    const hooked = new PgQueueStore({ pool, schema, chunkSize });
    const plugin = outbound({ queue: { type: "custom", store: hooked }, worker: { enabled: false } });
    const server = await startTestServer({ plugins: [claimRecipients({ route: "relay" }), plugin], dns });
    try {
      const queued = async (raw: Buffer) => {
        log.texts = [];
        const sent = await server.send({ to: "a@example.test", raw });
        const id = /queued as (\S+)/.exec(sent.response)![1]!;
        const texts = log.texts;
        const message = await store.get(id);
        const stored: Buffer[] = [];
        for await (const chunk of await store.body(id)) stored.push(chunk as Buffer);
        return { id, texts, size: message!.size, stored: Buffer.concat(stored) };
      };
      const small = await queued(buildMessage({ text: "short" }));
      expect(small.texts.filter((text) => /^\s*(BEGIN|WITH message AS|INSERT)/.test(text))).toHaveLength(1);
      expect(small.texts[0]).toMatch(/^WITH message AS/);
      expect(small.stored.length).toBe(small.size);
      expect(small.stored.toString()).toMatch(/^Received: [\s\S]*\r\n\r\nshort\r\n$/);
      expect(await chunkRows(small.id)).toEqual([{ seq: 0, length: small.size }]);

      const large = await queued(buildMessage({ text: bulkyText(chunkSize + 5000) }));
      expect(large.size).toBeGreaterThan(chunkSize);
      expect(large.texts).toContain("BEGIN");
      expect(large.texts.some((text) => text.startsWith("WITH message AS"))).toBe(false);
      expect(large.stored.length).toBe(large.size);
      expect((await chunkRows(large.id)).map((row) => row.length)).toEqual([chunkSize, large.size - chunkSize]);
    } finally {
      await server.stop();
      await dns.close();
    }
  });

  it("round-trips a message of many chunks byte-exact, from a stream and from a buffer", async () => {
    // Not a multiple of the chunk size, nor of the source's piece size.
    const bytes = randomBytes(5 * chunkSize + 12_345);
    const streamed = envelope(bytes.length);
    await store.enqueue(streamed, [{ address: "a@far.example" }], countingSource(bytes, 9_973).stream);
    const fromBuffer = envelope(bytes.length);
    await store.enqueue(fromBuffer, [{ address: "b@far.example" }], bytes);

    for (const message of [streamed, fromBuffer]) {
      const rows = await chunkRows(message.id);
      expect(rows.map((row) => row.seq)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(rows.map((row) => row.length)).toEqual([...Array(5).fill(chunkSize), 12_345]);
      const read = await readAll(await store.body(message.id));
      expect(read.length).toBe(bytes.length);
      expect(read.equals(bytes)).toBe(true);
    }

    // A small message and an empty one take the one-statement path.
    const small = envelope(100);
    const tiny = randomBytes(100);
    await store.enqueue(small, [{ address: "c@far.example" }], tiny);
    expect((await readAll(await store.body(small.id))).equals(tiny)).toBe(true);
    const empty = envelope(0);
    await store.enqueue(empty, [{ address: "d@far.example" }], Buffer.alloc(0));
    expect(await chunkRows(empty.id)).toEqual([]);
    expect((await readAll(await store.body(empty.id))).length).toBe(0);
    expect((await store.get(empty.id))?.recipients.map((r) => r.address)).toEqual(["d@far.example"]);
  });

  it("writes chunks as the source yields them and reads them back a few rows at a time", async () => {
    const bytes = randomBytes(32 * chunkSize); // 2 MiB
    const source = countingSource(bytes, 8 * 1024);
    const message = envelope(bytes.length);

    // Write side: at each chunk INSERT, how much of the source had been pulled.
    const pulledAtInsert: number[] = [];
    log.onQuery = (text) => {
      if (text.includes("INSERT INTO") && text.includes("message_chunks")) pulledAtInsert.push(source.pulled());
    };
    await store.enqueue(message, [{ address: "a@far.example" }], source.stream);
    log.onQuery = undefined;

    expect(pulledAtInsert).toHaveLength(32);
    pulledAtInsert.forEach((pulled, k) => {
      // Chunk k is inserted once k+1 chunks were read, plus at most the stream's small read-ahead:
      // never the whole body first.
      expect(pulled).toBeGreaterThanOrEqual((k + 1) * chunkSize);
      expect(pulled).toBeLessThanOrEqual((k + 1) * chunkSize + 32 * 1024);
    });
    expect(pulledAtInsert[0]).toBeLessThan(bytes.length / 8);

    // Read side: the stream is handed out before any chunk is fetched, fetches go as it is pulled,
    // and no emitted chunk is larger than a chunk row.
    const selects = () => log.texts.filter((text) => text.startsWith("SELECT data FROM")).length;
    const before = selects();
    const stream = await store.body(message.id);
    const sizes: number[] = [];
    const iterator = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    sizes.push((first.value as Buffer).length);
    // One fetch (4 rows) served the first chunk; the rest of the 32 is not read yet.
    expect(selects() - before).toBeLessThanOrEqual(2);
    const parts = [first.value as Buffer];
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      sizes.push(next.value.length);
      parts.push(next.value);
    }
    expect(Buffer.concat(parts).equals(bytes)).toBe(true);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(chunkSize);
    expect(selects() - before).toBeGreaterThanOrEqual(32 / 4);
  });

  it("fails the read, not truncates it, when the message is deleted mid-stream", async () => {
    const bytes = randomBytes(10 * chunkSize);
    const message = envelope(bytes.length);
    await store.enqueue(message, [{ address: "a@far.example" }], bytes);
    const iterator = ((await store.body(message.id)) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    expect(await store.delete(message.id)).toBe(true);
    const rest = async () => {
      for (let next = await iterator.next(); !next.done; next = await iterator.next());
    };
    await expect(rest()).rejects.toThrow(/was removed while being read/);
    await expect(store.body(message.id)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a failing source leaves nothing behind", async () => {
    const message = envelope(3 * chunkSize);
    async function* broken(): AsyncGenerator<Buffer> {
      yield randomBytes(2 * chunkSize);
      throw new Error("client went away");
    }
    await expect(
      store.enqueue(message, [{ address: "a@far.example" }], Readable.from(broken(), { objectMode: false })),
    ).rejects.toThrow(/client went away/);
    expect(await store.get(message.id)).toBeUndefined();
    expect(await chunkRows(message.id)).toEqual([]);
  });
});

describe("PostgreSQL queue store: schemas from before chunk rows", () => {
  const schema = `outbound_pglegacy_${randomBytes(4).toString("hex")}`;
  let pool: pg.Pool;

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    pool.on("error", () => undefined);
  });

  afterAll(async () => {
    await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool?.end();
  });

  it("moves bodies out of messages.body on open and still reads a body an old node writes there", async () => {
    // The previous version's messages table, with one queued message.
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await pool.query(`CREATE TABLE "${schema}".messages (
      id text PRIMARY KEY, envelope jsonb NOT NULL, body bytea NOT NULL, created_at timestamptz NOT NULL)`);
    const insertOld = async (bytes: Buffer) => {
      const message = envelope(bytes.length);
      await pool.query(`INSERT INTO "${schema}".messages VALUES ($1, $2, $3, now())`, [
        message.id,
        JSON.stringify(message),
        bytes,
      ]);
      return message;
    };
    const oldBytes = randomBytes(4 * chunkSize + 1);
    const old = await insertOld(oldBytes);

    const store = new PgQueueStore({ connectionString: databaseUrl, schema, chunkSize, maxConnections: 2 });
    try {
      await store.open();
      await store.open(); // idempotent
      const rows = await pool.query<{ n: string; bodies: string }>(
        `SELECT (SELECT count(*) FROM "${schema}".message_chunks WHERE message_id = $1) AS n,
                (SELECT count(body) FROM "${schema}".messages) AS bodies`,
        [old.id],
      );
      expect(rows.rows[0]).toEqual({ n: "5", bodies: "0" });
      expect((await readAll(await store.body(old.id))).equals(oldBytes)).toBe(true);

      // A node still on the old version queues into the column during a rolling upgrade.
      const laterBytes = randomBytes(3 * chunkSize + 7);
      const later = await insertOld(laterBytes);
      const sizes: number[] = [];
      expect((await readAll(await store.body(later.id), sizes)).equals(laterBytes)).toBe(true);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(chunkSize);

      // And the new version's messages coexist with the column.
      const fresh = envelope(10);
      await store.enqueue(fresh, [{ address: "a@far.example" }], Buffer.from("0123456789"));
      expect((await readAll(await store.body(fresh.id))).toString()).toBe("0123456789");
    } finally {
      await store.close();
    }
  });
});

describe("chunk size", () => {
  it("is checked by the plugin option and by the store", () => {
    expect(() => outbound({ queue: { type: "postgres", schema: "q", chunkSize: 1024 } })).toThrow(
      /^@postern\/outbound\.queue\.chunkSize: expected a chunk size from 4096 to 67108864 bytes/,
    );
    expect(() => new PgQueueStore({ connectionString: databaseUrl, chunkSize: 100 })).toThrow(/chunkSize 100 must be/);
  });
});

describe("chunked", () => {
  it("cuts any piece sizes into exact chunks", async () => {
    const out: Buffer[] = [];
    for await (const piece of chunked([Buffer.from("abc"), "defgh", Buffer.alloc(0), Buffer.from("ij")], 4)) {
      out.push(piece);
    }
    expect(out.map(String)).toEqual(["abcd", "efgh", "ij"]);
  });
});
