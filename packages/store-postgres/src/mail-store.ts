// The read side, for applications: list a mailbox, stream a message, delete a copy, and the
// retention sweep. It works on its own pool (or one the application passes in), so a web app can
// read what any Postern node stored without running the server.
import { Readable } from "node:stream";
import { ConfigError, parseOptions } from "@postern/core";
import pg from "pg";
import { z } from "zod";
import { withClient } from "./checkout.ts";
import { defaultMailbox } from "./mailbox-name.ts";
import { lockClass, migrate } from "./migrations.ts";
import { connectionStringExpected, schemaName } from "./options.ts";
import { quoteIdentifier } from "./sql.ts";

/** One recipient's copy of a stored message, as a mailbox lists it. */
export interface StoredMessage {
  /** The copy's ID (what get, stream, read and delete take). */
  id: string;
  mailbox: string;
  recipient: string;
  route: string;
  deliveredAt: Date;
  /** The stored message, shared by every recipient copy. */
  messageId: string;
  queueId: string;
  receivedAt: Date;
  /** The node that accepted it. */
  receivedBy: string;
  mailFrom: string;
  /** Bytes, prepended header fields included. */
  size: number;
  subject: string | null;
  from: string | null;
  messageIdHeader: string | null;
  clientAddress: string | null;
  clientHelo: string | null;
  authenticatedUser: string | null;
}

export interface ListOptions {
  /** At most this many (default 100). */
  limit?: number;
  /** Only copies after this ID (for paging: pass the last ID of the previous page). */
  after?: string;
}

export interface PostgresMailStore {
  /** Copies in `mailbox` (see the `mailbox` option; default the lower-cased address), oldest first. */
  list(mailbox: string, options?: ListOptions): Promise<StoredMessage[]>;
  get(id: string): Promise<StoredMessage | undefined>;
  /** The message bytes, fetched a few chunks at a time. Errors if the copy does not exist. */
  stream(id: string): Readable;
  /** The whole message in memory; prefer stream() for large ones. */
  read(id: string): Promise<Buffer>;
  /** Deletes one copy; the message goes with its last copy. Returns false if it did not exist. */
  delete(id: string): Promise<boolean>;
  /** Deletes messages received more than `days` ago (all their copies). Returns how many. */
  deleteOlderThan(days: number): Promise<number>;
  /** Creates or upgrades the schema (the plugin does this in setup). */
  migrate(): Promise<number[]>;
  /** Ends the pool if the store created it. */
  close(): Promise<void>;
}

export interface MailStoreOptions {
  /** PostgreSQL URL; default DATABASE_URL. Ignored when `pool` is given. */
  connectionString?: string;
  /** Use this pool instead of creating one (it is not ended by close()). */
  pool?: pg.Pool;
  /** Default "postern". */
  schema?: string;
}

const mailStoreOptionsSchema = z.strictObject({
  connectionString: z.string().min(1, { error: connectionStringExpected }).optional(),
  pool: z.custom<pg.Pool>((value) => value instanceof pg.Pool, { error: "expected a pg Pool" }).optional(),
  schema: schemaName.default("postern"),
});

/** Chunks fetched per query while streaming: bounded memory, few round trips. */
const chunksPerFetch = 4;
/** Messages deleted per statement by the retention sweep, so no statement runs long. */
const deleteBatch = 500;

interface Row {
  id: string;
  mailbox: string;
  recipient: string;
  route: string;
  delivered_at: Date;
  message_id: string;
  queue_id: string;
  received_at: Date;
  received_by: string;
  mail_from: string;
  size: string;
  subject: string | null;
  from_header: string | null;
  message_id_header: string | null;
  client_address: string | null;
  client_helo: string | null;
  authenticated_user: string | null;
}

function toStored(row: Row): StoredMessage {
  return {
    id: row.id,
    mailbox: row.mailbox,
    recipient: row.recipient,
    route: row.route,
    deliveredAt: row.delivered_at,
    messageId: row.message_id,
    queueId: row.queue_id,
    receivedAt: row.received_at,
    receivedBy: row.received_by,
    mailFrom: row.mail_from,
    size: Number(row.size),
    subject: row.subject,
    from: row.from_header,
    messageIdHeader: row.message_id_header,
    clientAddress: row.client_address,
    clientHelo: row.client_helo,
    authenticatedUser: row.authenticated_user,
  };
}

/** IDs are bigints; anything else would only make PostgreSQL raise. */
function isId(id: string): boolean {
  return /^[1-9]\d{0,18}$/.test(id);
}

export function openPostgresMailStore(options: MailStoreOptions = {}): PostgresMailStore {
  const resolved = parseOptions(mailStoreOptionsSchema, options, "@postern/store-postgres");
  const connectionString = resolved.connectionString ?? process.env.DATABASE_URL;
  if (!resolved.pool && !connectionString) {
    throw new ConfigError("@postern/store-postgres.connectionString", connectionStringExpected, {
      plugin: "@postern/store-postgres",
    });
  }
  const ownPool = resolved.pool ? undefined : new pg.Pool({ connectionString, max: 4 });
  // An idle connection that dies (server restart) is reported here; without a listener it would
  // crash the process. The next query simply gets a new connection.
  ownPool?.on("error", () => undefined);
  const pool = resolved.pool ?? ownPool!;
  const s = quoteIdentifier(resolved.schema);
  const selectCopies = `
    SELECT d.id, d.mailbox, d.recipient, d.route, d.delivered_at, m.id AS message_id, m.queue_id,
           m.received_at, m.received_by, m.mail_from, m.size, m.subject, m.from_header,
           m.message_id_header, m.client_address, m.client_helo, m.authenticated_user
      FROM ${s}.deliveries d JOIN ${s}.messages m ON m.id = d.message_id`;

  const get = async (id: string): Promise<StoredMessage | undefined> => {
    if (!isId(id)) return undefined;
    const { rows } = await pool.query<Row>(`${selectCopies} WHERE d.id = $1`, [id]);
    return rows[0] ? toStored(rows[0]) : undefined;
  };

  async function* chunksOf(id: string): AsyncGenerator<Buffer> {
    const copy = await get(id);
    if (!copy) throw Object.assign(new Error(`no stored message with ID ${id}`), { code: "ENOENT" });
    for (let seq = 0; ; seq += chunksPerFetch) {
      // Text results (bytea as hex, parsed into a Buffer by pg): pg 8.23 decodes every field of a
      // binary-mode result as UTF-8, which corrupted 8-bit mail (the conformance suite sends some).
      const { rows } = await pool.query<{ data: Buffer }>(
        `SELECT data FROM ${s}.message_chunks WHERE message_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq`,
        [copy.messageId, seq, seq + chunksPerFetch],
      );
      for (const row of rows) yield row.data;
      if (rows.length < chunksPerFetch) return;
    }
  }

  return {
    async list(mailbox, listOptions = {}) {
      const limit = Math.min(Math.max(1, listOptions.limit ?? 100), 10_000);
      const after = listOptions.after !== undefined && isId(listOptions.after) ? listOptions.after : "0";
      const { rows } = await pool.query<Row>(
        `${selectCopies} WHERE d.mailbox = $1 AND d.id > $2 ORDER BY d.id LIMIT $3`,
        [mailbox, after, limit],
      );
      return rows.map(toStored);
    },

    get,

    stream(id) {
      return Readable.from(chunksOf(id), { objectMode: false });
    },

    async read(id) {
      const chunks: Buffer[] = [];
      for await (const chunk of chunksOf(id)) chunks.push(chunk);
      return Buffer.concat(chunks);
    },

    async delete(id) {
      if (!isId(id)) return false;
      return withClient(pool, async (client) => {
        await client.query("BEGIN");
        try {
          const removed = await client.query<{ message_id: string }>(
            `DELETE FROM ${s}.deliveries WHERE id = $1 RETURNING message_id`,
            [id],
          );
          const messageId = removed.rows[0]?.message_id;
          if (messageId !== undefined) {
            // Lock the message first: two deletes of its last two copies must not both see the
            // other copy still there and leave the message behind.
            await client.query(`SELECT 1 FROM ${s}.messages WHERE id = $1 FOR UPDATE`, [messageId]);
            await client.query(
              `DELETE FROM ${s}.messages m WHERE m.id = $1
                 AND NOT EXISTS (SELECT 1 FROM ${s}.deliveries d WHERE d.message_id = m.id)`,
              [messageId],
            );
          }
          await client.query("COMMIT");
          return messageId !== undefined;
        } catch (error) {
          await client.query("ROLLBACK").catch(() => undefined);
          throw error;
        }
      });
    },

    async deleteOlderThan(days) {
      if (!(days > 0)) throw new RangeError("deleteOlderThan(days): expected a positive number of days");
      let total = 0;
      for (;;) {
        const { rowCount } = await pool.query(
          `DELETE FROM ${s}.messages WHERE id IN (
             SELECT id FROM ${s}.messages WHERE received_at < now() - make_interval(secs => $1)
             ORDER BY id LIMIT ${deleteBatch})`,
          [days * 86_400],
        );
        total += rowCount ?? 0;
        if ((rowCount ?? 0) < deleteBatch) return total;
      }
    },

    async migrate() {
      return withClient(pool, (client) => migrate(client, resolved.schema));
    },

    async close() {
      await ownPool?.end();
    },
  };
}

/**
 * One retention sweep, run by at most one node at a time (a session advisory lock; a node that
 * does not get it skips this round). Returns how many messages were deleted, or undefined if
 * another node was sweeping.
 */
export async function sweepOnce(pool: pg.Pool, schema: string, days: number): Promise<number | undefined> {
  const key = `retention:${schema}`;
  return withClient(pool, async (client) => {
    const { rows } = await client.query<{ locked: boolean }>(
      "SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked",
      [lockClass, key],
    );
    if (rows[0]?.locked !== true) return undefined;
    try {
      return await openPostgresMailStore({ pool, schema }).deleteOlderThan(days);
    } finally {
      // A session lock: if this connection dies instead, the server releases it with the session.
      await client.query("SELECT pg_advisory_unlock($1, hashtext($2))", [lockClass, key]);
    }
  });
}

export { defaultMailbox };
