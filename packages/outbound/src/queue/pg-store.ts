// The shared queue store: PostgreSQL, for several Postern nodes delivering from one queue.
//
// Claims take rows with FOR UPDATE SKIP LOCKED and stamp a lease (locked_by, locked_until) in
// the same statement, so two workers never hold the same recipient: a row another claimer has
// locked is skipped, and a row it already stamped no longer matches the "not leased" condition
// when re-checked. A crashed node's leases run out and its recipients become due again.
// All times come from the database clock, so nodes with skewed clocks still agree on leases.
//
// Message bytes never sit whole in memory: enqueue() writes them as bounded chunk rows
// (`message_chunks`, one per `chunkSize` bytes) inside the transaction that commits the queue
// entry, and body() reads them back a few rows per query as the consumer pulls.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import pg from "pg";
import { BodyCache } from "./body-cache.ts";
import {
  assertMessageId,
  type Claim,
  type ClaimOptions,
  type DeliveryReply,
  domainOf,
  type ListOptions,
  type MessageEnvelope,
  type NewRecipient,
  type QueuedMessage,
  type QueueStats,
  type QueueStore,
  type RecipientOutcome,
  type RecipientRecord,
  type RecipientState,
  type ReleaseOptions,
} from "./store.ts";

export interface PgQueueStoreOptions {
  /** postgres:// URL; defaults to $DATABASE_URL. Ignored when `pool` is given. */
  connectionString?: string | undefined;
  /** Use this pool (shared with other plugins); it is not ended on close. */
  pool?: pg.Pool | undefined;
  /** Schema holding the queue tables; one per Postern cluster (and per test file). */
  schema?: string | undefined;
  /** Most connections this store opens. */
  maxConnections?: number | undefined;
  /** Bytes per stored chunk row: the most of one message held in memory at once. Default 256 KiB. */
  chunkSize?: number | undefined;
}

const defaultChunkSize = 256 * 1024;
/** Chunk rows fetched per query while a body is read. */
const chunksPerFetch = 4;

/** Cuts a byte stream into pieces of exactly `size` bytes (the last one shorter), one piece buffered at a time. */
export async function* chunked(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  size: number,
): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const item of source) {
    const bytes = typeof item === "string" ? Buffer.from(item) : item;
    for (let offset = 0; offset < bytes.length; ) {
      const piece = bytes.subarray(offset, offset + (size - held));
      parts.push(piece);
      held += piece.length;
      offset += piece.length;
      if (held === size) {
        yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
        parts = [];
        held = 0;
      }
    }
  }
  if (held > 0) yield Buffer.concat(parts, held);
}

interface RecipientRow {
  message_id: string;
  idx: number;
  address: string;
  domain: string;
  notify: string | null;
  orcpt: string | null;
  state: RecipientState;
  attempts: number;
  next_attempt_at: Date;
  last_code: number | null;
  last_status: string | null;
  last_text: string | null;
  last_remote: string | null;
  delay_reported_at: Date | null;
}

function removedWhileRead(messageId: string): Error {
  return Object.assign(new Error(`message ${messageId} was removed while being read`), { code: "ENOENT" });
}

const identifier = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * complete() in one round trip instead of five (BEGIN, lock, update, delete, COMMIT): a function
 * doing the same steps in the same order. Its statements run in the caller's one-statement
 * transaction, and in READ COMMITTED each takes a new snapshot, so — as with the separate
 * statements — the delete, after the lock that serializes completions of one message (several
 * domains may finish together), sees every other completion's update. A single statement with
 * CTEs would not: its snapshot predates the lock wait. Replaced on every open, so a node of a
 * newer version brings its own; arguments: message id, then per outcome its recipient index,
 * new state, retry delay (ms), reply code, status, text, remote, the worker, whether a delay
 * report was sent.
 */
function completeFunctionSql(name: string, messages: string, recipients: string): string {
  return `CREATE OR REPLACE FUNCTION ${name}(
      p_message text, p_idx integer[], p_state text[], p_delay bigint[], p_code integer[],
      p_status text[], p_text text[], p_remote text[], p_worker text, p_reported boolean[])
    RETURNS SETOF integer LANGUAGE plpgsql VOLATILE AS $fn$
    BEGIN
      PERFORM 1 FROM ${messages} WHERE id = p_message FOR UPDATE;
      IF NOT FOUND THEN
        RETURN;
      END IF;
      RETURN QUERY WITH updated AS (
        UPDATE ${recipients} AS r SET
          state = v.state,
          attempts = r.attempts + 1,
          next_attempt_at = CASE WHEN v.state = 'queued' THEN now() + v.delay * interval '1 millisecond' ELSE r.next_attempt_at END,
          last_code = v.code, last_status = v.status, last_text = v.text, last_remote = NULLIF(v.remote, ''),
          delay_reported_at = CASE WHEN v.reported THEN now() ELSE r.delay_reported_at END,
          locked_by = NULL, locked_until = NULL
        FROM unnest(p_idx, p_state, p_delay, p_code, p_status, p_text, p_remote, p_reported)
          AS v(idx, state, delay, code, status, text, remote, reported)
        WHERE r.message_id = p_message AND r.idx = v.idx AND r.locked_by = p_worker AND r.state = 'queued'
        RETURNING r.idx
      ) SELECT updated.idx FROM updated;
      DELETE FROM ${messages} WHERE id = p_message
        AND NOT EXISTS (SELECT 1 FROM ${recipients} WHERE message_id = p_message AND state IN ('queued', 'held'));
    END
    $fn$`;
}

function toRecord(row: RecipientRow): RecipientRecord {
  const lastReply: DeliveryReply | undefined =
    row.last_code === null
      ? undefined
      : {
          code: row.last_code,
          status: row.last_status ?? "",
          text: row.last_text ?? "",
          remote: row.last_remote ?? undefined,
        };
  return {
    index: row.idx,
    address: row.address,
    domain: row.domain,
    notify: row.notify ? row.notify.split(",") : undefined,
    orcpt: row.orcpt ?? undefined,
    state: row.state,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at.getTime(),
    lastReply,
    delayReportedAt: row.delay_reported_at?.getTime() ?? undefined,
  };
}

export class PgQueueStore implements QueueStore {
  readonly kind = "postgres";
  readonly schema: string;
  readonly #pool: pg.Pool;
  readonly #ownPool: boolean;
  readonly #t: { messages: string; chunks: string; recipients: string; cache: string };
  readonly #chunkSize: number;
  /** The schema's complete_recipients function, quoted. */
  readonly #completeFunction: string;
  /** Bodies this process just enqueued as one Buffer, for their first delivery. */
  readonly #bodyCache = new BodyCache();
  /** A body of up to one chunk is written with the message and its recipients in one statement. */
  readonly bodyBufferLimit: number;
  /** The schema has the old `messages.body` column, which rolling upgrades may still fill. */
  #legacyBody = false;
  /** Per schema: prepared statement names must be unique per connection, and a pool may be shared. */
  readonly #statementPrefix: string;

  constructor(options: PgQueueStoreOptions = {}) {
    this.schema = options.schema ?? "postern_outbound";
    if (!identifier.test(this.schema)) {
      throw new TypeError(`schema "${this.schema}" must be a lower-case SQL identifier (letters, digits, _)`);
    }
    const q = `"${this.schema}"`;
    this.#t = {
      messages: `${q}.messages`,
      chunks: `${q}.message_chunks`,
      recipients: `${q}.recipients`,
      cache: `${q}.cache`,
    };
    this.#completeFunction = `${q}.complete_recipients`;
    this.#statementPrefix = `postern_outbound_${createHash("sha256").update(this.schema).digest("hex").slice(0, 16)}`;
    this.#chunkSize = options.chunkSize ?? defaultChunkSize;
    if (!Number.isInteger(this.#chunkSize) || this.#chunkSize < 4096 || this.#chunkSize > 64 * 1024 * 1024) {
      throw new TypeError(`chunkSize ${this.#chunkSize} must be a whole number of bytes from 4096 to 64 MiB`);
    }
    this.bodyBufferLimit = this.#chunkSize;
    if (options.pool) {
      this.#pool = options.pool;
      this.#ownPool = false;
    } else {
      const connectionString = options.connectionString ?? process.env.DATABASE_URL;
      if (!connectionString) throw new TypeError("no PostgreSQL connection string (option or $DATABASE_URL)");
      this.#pool = new pg.Pool({ connectionString, max: options.maxConnections ?? 10 });
      // An idle client losing its connection must not crash the process; the next query reconnects.
      this.#pool.on("error", () => undefined);
      this.#ownPool = true;
    }
  }

  async #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    // A checked-out client is not heard by the pool's error listener: a server restart mid-
    // transaction would emit an unheard 'error' and crash the process. Keep the error, fail the
    // work, and discard the connection instead of returning it (PostgreSQL rolls back the rest).
    let lost: Error | undefined;
    const onError = (error: Error) => {
      lost ??= error;
    };
    client.on("error", onError);
    try {
      await client.query("BEGIN");
      const result = await work(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      if (!lost) await client.query("ROLLBACK").catch(() => undefined);
      lost ??= error instanceof Error && isConnectionError(error) ? error : undefined;
      throw error;
    } finally {
      if (!lost) client.off("error", onError);
      client.release(lost);
    }
  }

  async open(): Promise<void> {
    const { messages, chunks, recipients, cache } = this.#t;
    // Nodes starting together would race on CREATE … IF NOT EXISTS; one migrates at a time.
    await this.#transaction(async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`postern-outbound:${this.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${messages} (
        id text PRIMARY KEY,
        envelope jsonb NOT NULL,
        created_at timestamptz NOT NULL
      )`);
      // The bytes, in order, a bounded chunk per row: written and read as streams.
      await client.query(`CREATE TABLE IF NOT EXISTS ${chunks} (
        message_id text NOT NULL REFERENCES ${messages} (id) ON DELETE CASCADE,
        seq integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (message_id, seq)
      )`);
      await this.#migrateBodyColumn(client);
      await client.query(`CREATE TABLE IF NOT EXISTS ${recipients} (
        message_id text NOT NULL REFERENCES ${messages} (id) ON DELETE CASCADE,
        idx integer NOT NULL,
        address text NOT NULL,
        domain text NOT NULL,
        notify text,
        orcpt text,
        state text NOT NULL DEFAULT 'queued',
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        locked_by text,
        locked_until timestamptz,
        last_code integer,
        last_status text,
        last_text text,
        last_remote text,
        delay_reported_at timestamptz,
        PRIMARY KEY (message_id, idx)
      )`);
      // Added with delay reports: schemas made before them get the column here.
      await client.query(`ALTER TABLE ${recipients} ADD COLUMN IF NOT EXISTS delay_reported_at timestamptz`);
      await client.query(
        `CREATE INDEX IF NOT EXISTS recipients_due ON ${recipients} (next_attempt_at) WHERE state = 'queued'`,
      );
      await client.query(`CREATE TABLE IF NOT EXISTS ${cache} (
        key text PRIMARY KEY,
        value jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
      await client.query(completeFunctionSql(this.#completeFunction, messages, recipients));
    });
  }

  /**
   * Schemas made by versions before chunk rows keep each body in `messages.body`. Their bodies are
   * moved into chunk rows here, inside PostgreSQL (nothing passes through this process). The
   * column stays, nullable, while it exists: a node still running the old version may queue into
   * it during a rolling upgrade, and body() reads such a message from it, a chunk at a time.
   */
  async #migrateBodyColumn(client: pg.PoolClient): Promise<void> {
    const column = await client.query(
      `SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'messages' AND column_name = 'body'`,
      [this.schema],
    );
    this.#legacyBody = (column.rowCount ?? 0) > 0;
    if (!this.#legacyBody) return;
    const { messages, chunks } = this.#t;
    await client.query(`ALTER TABLE ${messages} ALTER COLUMN body DROP NOT NULL`);
    await client.query(
      `INSERT INTO ${chunks} (message_id, seq, data)
       SELECT m.id, s.seq, substring(m.body FROM s.seq * $1 + 1 FOR $1)
       FROM ${messages} m, generate_series(0, (octet_length(m.body) - 1) / $1) AS s(seq)
       WHERE m.body IS NOT NULL AND octet_length(m.body) > 0
       ON CONFLICT DO NOTHING`,
      [this.#chunkSize],
    );
    await client.query(`UPDATE ${messages} SET body = NULL WHERE body IS NOT NULL`);
  }

  #closed = false;

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#bodyCache.clear();
    if (this.#ownPool) await this.#pool.end();
  }

  /**
   * A query prepared once per connection (node-postgres sends Parse once per name): the statements
   * every message runs skip PostgreSQL's parse and plan, which for the claim took half a
   * millisecond of the database's CPU each time (EXPLAIN ANALYZE: planning 0.5 ms, execution 1.0).
   */
  #prepared(key: string, text: string, values: unknown[]): pg.QueryConfig {
    return { name: `${this.#statementPrefix}_${key}`, text, values };
  }

  async enqueue(
    envelope: MessageEnvelope,
    recipientList: readonly NewRecipient[],
    body: Readable | Buffer,
  ): Promise<void> {
    assertMessageId(envelope.id);
    if (recipientList.length === 0) throw new TypeError("a queued message needs at least one recipient");
    const { messages, chunks, recipients } = this.#t;
    const recipientParams = [
      recipientList.map((recipient) => recipient.address),
      recipientList.map((recipient) => domainOf(recipient.address)),
      recipientList.map((recipient) => (recipient.notify ?? []).join(",")),
      recipientList.map((recipient) => recipient.orcpt ?? ""),
    ];
    const insertRecipients = (messageId: string) => `
      INSERT INTO ${recipients} (message_id, idx, address, domain, notify, orcpt)
      SELECT ${messageId}, (t.i - 1)::integer, t.address, t.domain, NULLIF(t.notify, ''), NULLIF(t.orcpt, '')
      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS t(address, domain, notify, orcpt, i)`;

    // Most mail fits one chunk and comes as a Buffer (delivery reports, signed messages): one
    // statement writes the message, its chunk and its recipients, atomic on its own.
    if (Buffer.isBuffer(body) && body.length <= this.#chunkSize) {
      await this.#pool.query(
        this.#prepared(
          "enqueue",
          `WITH message AS (
           INSERT INTO ${messages} (id, envelope, created_at) VALUES ($1, $6, to_timestamp($7 / 1000.0)) RETURNING id
         ), chunk AS (
           INSERT INTO ${chunks} (message_id, seq, data) SELECT id, 0, $8 FROM message WHERE octet_length($8::bytea) > 0
         )
         ${insertRecipients("(SELECT id FROM message)")}`,
          [envelope.id, ...recipientParams, JSON.stringify(envelope), envelope.createdAt, body],
        ),
      );
      this.#bodyCache.set(envelope.id, body);
      return;
    }

    // Otherwise the chunks are written as the source yields them: at most one chunk is held, and
    // nothing is visible (or left behind on failure) until the COMMIT.
    await this.#transaction(async (client) => {
      await client.query(
        `INSERT INTO ${messages} (id, envelope, created_at) VALUES ($1, $2, to_timestamp($3 / 1000.0))`,
        [envelope.id, JSON.stringify(envelope), envelope.createdAt],
      );
      let seq = 0;
      for await (const chunk of chunked(Buffer.isBuffer(body) ? [body] : body, this.#chunkSize)) {
        // A Buffer parameter travels in binary: no hex or escape encoding of the bytes.
        await client.query(`INSERT INTO ${chunks} (message_id, seq, data) VALUES ($1, $2, $3)`, [
          envelope.id,
          seq++,
          chunk,
        ]);
      }
      await client.query(insertRecipients("$1"), [envelope.id, ...recipientParams]);
    });
  }

  async claim(options: ClaimOptions): Promise<Claim[]> {
    const { recipients, messages } = this.#t;
    const claimed = await this.#pool.query<RecipientRow & { envelope: MessageEnvelope }>(
      // seeds: the oldest due recipients, at most one per delivery wanted; picked: every due
      // recipient of the same message and domain, so one delivery is never split between workers.
      // Row locks alone would let two workers seed on two recipients of one message and each pick
      // only its own: a message-level advisory lock (held until this statement commits) keeps a
      // message to whichever worker seeds it first.
      this.#prepared(
        "claim",
        `WITH seeds AS (
         SELECT message_id, domain FROM ${recipients}
         WHERE state = 'queued' AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until <= now())
           AND pg_try_advisory_xact_lock(hashtext('postern-outbound-claim:' || message_id))
         ORDER BY next_attempt_at, message_id, idx
         LIMIT $1
         FOR UPDATE SKIP LOCKED
       ), picked AS (
         SELECT message_id, idx FROM ${recipients}
         WHERE (message_id, domain) IN (SELECT message_id, domain FROM seeds)
           AND state = 'queued' AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until <= now())
         FOR UPDATE SKIP LOCKED
       )
       UPDATE ${recipients} AS r
       SET locked_by = $2, locked_until = now() + $3 * interval '1 millisecond'
       FROM picked JOIN ${messages} AS m ON m.id = picked.message_id
       WHERE r.message_id = picked.message_id AND r.idx = picked.idx
       RETURNING r.*, m.envelope`,
        [options.limit, options.worker, options.leaseMs],
      ),
    );
    // The envelope comes with each claimed row (the join above): one round trip per claim, where
    // a second query for the envelopes was one more per delivered message.
    const byMessage = new Map<string, { message: MessageEnvelope; recipients: RecipientRecord[] }>();
    for (const row of claimed.rows) {
      const claim = byMessage.get(row.message_id) ?? { message: row.envelope, recipients: [] };
      claim.recipients.push(toRecord(row));
      byMessage.set(row.message_id, claim);
    }
    const claims = [...byMessage.values()];
    for (const claim of claims) claim.recipients.sort((a, b) => a.index - b.index);
    return claims;
  }

  async renew(worker: string, leaseMs: number): Promise<number> {
    const result = await this.#pool.query(
      `UPDATE ${this.#t.recipients} SET locked_until = now() + $2 * interval '1 millisecond'
       WHERE locked_by = $1 AND state = 'queued'`,
      [worker, leaseMs],
    );
    return result.rowCount ?? 0;
  }

  async release(
    worker: string,
    messageId: string,
    indexes: readonly number[],
    options: ReleaseOptions = {},
  ): Promise<void> {
    await this.#pool.query(
      `UPDATE ${this.#t.recipients} SET locked_by = NULL, locked_until = NULL,
         next_attempt_at = GREATEST(next_attempt_at, now() + $4 * interval '1 millisecond')
       WHERE message_id = $1 AND idx = ANY($2::integer[]) AND locked_by = $3 AND state = 'queued'`,
      [messageId, indexes, worker, Math.max(0, options.delayMs ?? 0)],
    );
  }

  async complete(worker: string, messageId: string, outcomes: readonly RecipientOutcome[]): Promise<number[]> {
    if (outcomes.length === 0) return [];
    // The first attempt is over: a retry, later (perhaps on another node), reads the rows.
    this.#bodyCache.delete(messageId);
    // One round trip: the function (completeFunctionSql) locks, updates and deletes in order.
    const updated = await this.#pool.query<{ idx: number }>(
      this.#prepared(
        "complete",
        `SELECT idx FROM ${this.#completeFunction}($1, $2::integer[], $3::text[], $4::bigint[], $5::integer[],
         $6::text[], $7::text[], $8::text[], $9, $10::boolean[]) AS idx`,
        [
          messageId,
          outcomes.map((outcome) => outcome.index),
          outcomes.map((outcome) => (outcome.result === "deferred" ? "queued" : outcome.result)),
          outcomes.map((outcome) =>
            outcome.result === "deferred" ? Math.max(0, Math.round(outcome.retryAfterMs)) : 0,
          ),
          outcomes.map((outcome) => outcome.reply.code),
          outcomes.map((outcome) => outcome.reply.status),
          outcomes.map((outcome) => outcome.reply.text),
          outcomes.map((outcome) => outcome.reply.remote ?? ""),
          worker,
          outcomes.map((outcome) => outcome.result === "deferred" && Boolean(outcome.delayReported)),
        ],
      ),
    );
    return updated.rows.map((row) => row.idx).sort((a, b) => a - b);
  }

  async body(messageId: string): Promise<Readable> {
    // Enqueued by this process moments ago: no query (body-cache.ts says why).
    const cached = this.#bodyCache.get(messageId);
    if (cached) return Readable.from([cached], { objectMode: false });
    // Checked before the stream is handed out, so a missing message is an error here, not mid-read.
    // The chunk count is taken now so that a message deleted mid-read (`postern queue delete`)
    // fails the stream instead of ending it early: a short body must never go out as complete.
    const result = await this.#pool.query<{ legacy: string | null; chunks: string }>(
      `SELECT ${this.#legacyBody ? "octet_length(body)" : "NULL::bigint"} AS legacy,
              (SELECT count(*) FROM ${this.#t.chunks} WHERE message_id = $1) AS chunks
       FROM ${this.#t.messages} WHERE id = $1`,
      [messageId],
    );
    const row = result.rows[0];
    if (!row) throw Object.assign(new Error(`message ${messageId} is not queued`), { code: "ENOENT" });
    const chunks =
      row.legacy === null
        ? this.#chunksOf(messageId, Number(row.chunks))
        : this.#legacyChunksOf(messageId, Number(row.legacy));
    return Readable.from(chunks, { objectMode: false, highWaterMark: this.#chunkSize });
  }

  /** The chunk rows in order, `chunksPerFetch` per query, fetched as the reader pulls. */
  async *#chunksOf(messageId: string, count: number): AsyncGenerator<Buffer> {
    for (let seq = 0; seq < count; seq += chunksPerFetch) {
      // Text results (bytea as hex, decoded per row): pg 8's binary result mode decodes every
      // field as UTF-8 and would corrupt the bytes.
      const { rows } = await this.#pool.query<{ data: Buffer }>(
        `SELECT data FROM ${this.#t.chunks} WHERE message_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq`,
        [messageId, seq, seq + chunksPerFetch],
      );
      if (rows.length < Math.min(chunksPerFetch, count - seq)) throw removedWhileRead(messageId);
      for (const row of rows) yield row.data;
    }
  }

  /** A body an old-version node wrote into `messages.body`, sliced by PostgreSQL a chunk at a time. */
  async *#legacyChunksOf(messageId: string, size: number): AsyncGenerator<Buffer> {
    for (let offset = 0; offset < size; offset += this.#chunkSize) {
      const { rows } = await this.#pool.query<{ data: Buffer | null }>(
        `SELECT substring(body FROM $2 FOR $3) AS data FROM ${this.#t.messages} WHERE id = $1`,
        [messageId, offset + 1, this.#chunkSize],
      );
      const data = rows[0]?.data;
      if (!data) throw removedWhileRead(messageId);
      yield data;
    }
  }

  async #messagesWithRecipients(where: string, params: unknown[], limit?: number): Promise<QueuedMessage[]> {
    const { messages, recipients } = this.#t;
    const found = await this.#pool.query<{ id: string; envelope: MessageEnvelope }>(
      `SELECT id, envelope FROM ${messages} ${where} ORDER BY created_at, id ${limit ? `LIMIT ${Math.floor(limit)}` : ""}`,
      params,
    );
    if (found.rows.length === 0) return [];
    const rows = await this.#pool.query<RecipientRow>(
      `SELECT * FROM ${recipients} WHERE message_id = ANY($1::text[]) ORDER BY message_id, idx`,
      [found.rows.map((row) => row.id)],
    );
    const byMessage = new Map<string, RecipientRecord[]>();
    for (const row of rows.rows) {
      const list = byMessage.get(row.message_id) ?? [];
      list.push(toRecord(row));
      byMessage.set(row.message_id, list);
    }
    return found.rows.map((row) => ({ ...row.envelope, recipients: byMessage.get(row.id) ?? [] }));
  }

  async get(messageId: string): Promise<QueuedMessage | undefined> {
    return (await this.#messagesWithRecipients("WHERE id = $1", [messageId]))[0];
  }

  list(options: ListOptions = {}): Promise<QueuedMessage[]> {
    return this.#messagesWithRecipients("", [], options.limit);
  }

  async retry(messageId?: string): Promise<number> {
    const result = await this.#pool.query(
      `UPDATE ${this.#t.recipients} SET next_attempt_at = LEAST(next_attempt_at, now())
       WHERE state = 'queued' ${messageId === undefined ? "" : "AND message_id = $1"}`,
      messageId === undefined ? [] : [messageId],
    );
    return result.rowCount ?? 0;
  }

  async hold(messageId: string): Promise<number> {
    // One being delivered right now (a live lease) finishes its attempt.
    const result = await this.#pool.query(
      `UPDATE ${this.#t.recipients} SET state = 'held'
       WHERE message_id = $1 AND state = 'queued' AND (locked_until IS NULL OR locked_until <= now())`,
      [messageId],
    );
    return result.rowCount ?? 0;
  }

  async unhold(messageId: string): Promise<number> {
    const result = await this.#pool.query(
      `UPDATE ${this.#t.recipients} SET state = 'queued', next_attempt_at = LEAST(next_attempt_at, now())
       WHERE message_id = $1 AND state = 'held'`,
      [messageId],
    );
    return result.rowCount ?? 0;
  }

  async delete(messageId: string): Promise<boolean> {
    this.#bodyCache.delete(messageId);
    const result = await this.#pool.query(`DELETE FROM ${this.#t.messages} WHERE id = $1`, [messageId]);
    return (result.rowCount ?? 0) > 0;
  }

  async ready(): Promise<void> {
    await this.#pool.query("SELECT 1");
  }

  async stats(): Promise<QueueStats> {
    const { messages, recipients } = this.#t;
    const totals = await this.#pool.query<{ messages: string; oldest: Date | null }>(
      `SELECT count(*) AS messages, min(created_at) AS oldest FROM ${messages}`,
    );
    const counts = await this.#pool.query<{ queued: string; deferred: string; active: string; held: string }>(
      `SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
              count(*) FILTER (WHERE state = 'queued' AND attempts > 0) AS deferred,
              count(*) FILTER (WHERE state = 'queued' AND locked_until > now()) AS active,
              count(*) FILTER (WHERE state = 'held') AS held
       FROM ${recipients} WHERE state IN ('queued', 'held')`,
    );
    const domains = await this.#pool.query<{ domain: string; queued: string }>(
      `SELECT domain, count(*) AS queued FROM ${recipients} WHERE state = 'queued'
       GROUP BY domain ORDER BY count(*) DESC, domain LIMIT 100`,
    );
    const total = totals.rows[0]!;
    const count = counts.rows[0]!;
    return {
      messages: Number(total.messages),
      queued: Number(count.queued),
      deferred: Number(count.deferred),
      active: Number(count.active),
      held: Number(count.held),
      oldestCreatedAt: total.oldest ? total.oldest.getTime() : undefined,
      domains: domains.rows.map((row) => ({ domain: row.domain, queued: Number(row.queued) })),
    };
  }

  async nextDue(): Promise<number | undefined> {
    const result = await this.#pool.query<{ due: Date | null }>(
      this.#prepared(
        "next_due",
        `SELECT min(GREATEST(next_attempt_at, COALESCE(locked_until, next_attempt_at))) AS due
         FROM ${this.#t.recipients} WHERE state = 'queued'`,
        [],
      ),
    );
    return result.rows[0]?.due?.getTime();
  }

  async loadCached(key: string): Promise<unknown> {
    const result = await this.#pool.query<{ value: unknown }>(`SELECT value FROM ${this.#t.cache} WHERE key = $1`, [
      key,
    ]);
    return result.rows[0]?.value;
  }

  async saveCached(key: string, value: unknown): Promise<void> {
    await this.#pool.query(
      `INSERT INTO ${this.#t.cache} (key, value, updated_at) VALUES ($1, $2, now())
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
      [key, JSON.stringify(value)],
    );
  }
}

/** An error that leaves the connection unusable (it ended, or the server went away). */
function isConnectionError(error: Error): boolean {
  const code = (error as { code?: string }).code ?? "";
  return /terminat|Connection/i.test(error.message) || code.startsWith("57P") || code === "ECONNRESET";
}
