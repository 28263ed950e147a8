// One delivery, atomically: the message row, its bytes as chunk rows streamed from the spool (at
// most one chunk in memory), and one delivery row per recipient's mailbox. Until the commit nothing
// is visible to readers; if anything fails — including the connection being killed — PostgreSQL
// rolls everything back and nothing is left behind.
//
// A message that fits in one chunk (most mail) is written by a single INSERT … RETURNING statement
// with data-modifying CTEs: atomic on its own, one round trip instead of six. Larger messages are
// streamed chunk by chunk inside BEGIN … COMMIT.
import { createHash } from "node:crypto";
import type { Message, RouteGroup, Transaction } from "@postern/core";
import type { PoolClient } from "pg";

export interface WriteRequest {
  /** The schema name, already quoted. */
  schema: string;
  chunkSize: number;
  hostname: string;
  transaction: Transaction;
  message: Message;
  group: RouteGroup;
  mailboxOf(address: string): string;
  signal: AbortSignal;
}

export interface Written {
  messageId: string;
  size: number;
  chunks: number;
  deliveries: number;
}

/** Collects stream chunks into pieces of `size` bytes (the last one shorter). */
async function* rechunk(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of source) {
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(size - pendingBytes, chunk.length - offset);
      pending.push(chunk.subarray(offset, offset + take));
      pendingBytes += take;
      offset += take;
      if (pendingBytes === size) {
        yield Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

/** Columns of the message row known before the bytes are read, as parameters $1–$9. */
function messageColumns(request: WriteRequest): unknown[] {
  const { transaction, message } = request;
  const session = transaction.session;
  return [
    transaction.id,
    request.hostname,
    transaction.mailFrom.address,
    message.headers.get("subject")?.trim() ?? null,
    message.headers.get("from")?.trim() ?? null,
    message.headers.get("message-id")?.trim() ?? null,
    session.remoteAddress,
    session.heloName ?? null,
    session.user ?? null,
  ];
}

const messageInsert = (s: string, extraColumns: string, extraValues: string) => `
  INSERT INTO ${s}.messages
    (queue_id, received_by, mail_from, subject, from_header, message_id_header,
     client_address, client_helo, authenticated_user${extraColumns})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9${extraValues})
  RETURNING id`;

/** Recipients that share a mailbox (Alice@ and alice@) get one copy: mailbox → recipient. */
function mailboxes(request: WriteRequest): Map<string, string> {
  const byMailbox = new Map<string, string>();
  for (const recipient of request.group.recipients) {
    const mailbox = request.mailboxOf(recipient.address);
    if (!byMailbox.has(mailbox)) byMailbox.set(mailbox, recipient.address);
  }
  return byMailbox;
}

async function writeSmall(client: PoolClient, request: WriteRequest): Promise<Written> {
  const { schema: s } = request;
  const chunks: Buffer[] = [];
  for await (const chunk of request.message.stream() as AsyncIterable<Buffer>) chunks.push(chunk);
  const data = Buffer.concat(chunks);
  const byMailbox = mailboxes(request);
  // Past the hook's deadline core has already answered 4xx: write nothing.
  request.signal.throwIfAborted();
  const { rows } = await client.query<{ id: string }>(
    `WITH message AS (${messageInsert(s, ", size, chunk_count, sha256", ", $10, 1, $11")}),
          chunk AS (INSERT INTO ${s}.message_chunks (message_id, seq, data) SELECT id, 0, $12 FROM message),
          delivery AS (
            INSERT INTO ${s}.deliveries (message_id, mailbox, recipient, route)
            SELECT message.id, r.mailbox, r.recipient, $15
              FROM message, unnest($13::text[], $14::text[]) AS r (mailbox, recipient))
     SELECT id FROM message`,
    [
      ...messageColumns(request),
      data.length,
      createHash("sha256").update(data).digest(),
      data,
      [...byMailbox.keys()],
      [...byMailbox.values()],
      request.group.route,
    ],
  );
  return { messageId: rows[0]!.id, size: data.length, chunks: 1, deliveries: byMailbox.size };
}

async function writeStreamed(client: PoolClient, request: WriteRequest): Promise<Written> {
  const { schema: s, message, group, signal } = request;
  await client.query("BEGIN");
  try {
    const inserted = await client.query<{ id: string }>(messageInsert(s, "", ""), messageColumns(request));
    const messageId = inserted.rows[0]!.id;
    const hash = createHash("sha256");
    let size = 0;
    let seq = 0;
    for await (const chunk of rechunk(message.stream() as AsyncIterable<Buffer>, request.chunkSize)) {
      signal.throwIfAborted();
      hash.update(chunk);
      // pg sends a Buffer parameter in binary: no hex or escape encoding of the bytes.
      await client.query(`INSERT INTO ${s}.message_chunks (message_id, seq, data) VALUES ($1, $2, $3)`, [
        messageId,
        seq,
        chunk,
      ]);
      size += chunk.length;
      seq++;
    }
    await client.query(`UPDATE ${s}.messages SET size = $2, chunk_count = $3, sha256 = $4 WHERE id = $1`, [
      messageId,
      size,
      seq,
      hash.digest(),
    ]);
    const byMailbox = mailboxes(request);
    await client.query(
      `INSERT INTO ${s}.deliveries (message_id, mailbox, recipient, route)
       SELECT $1, mailbox, recipient, $4 FROM unnest($2::text[], $3::text[]) AS r (mailbox, recipient)`,
      [messageId, [...byMailbox.keys()], [...byMailbox.values()], group.route],
    );
    // Past the hook's deadline core has already answered 4xx: commit nothing.
    signal.throwIfAborted();
    await client.query("COMMIT");
    return { messageId, size, chunks: seq, deliveries: byMailbox.size };
  } catch (error) {
    // On a dead connection this fails too; the server has rolled back already.
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

export async function writeMessage(client: PoolClient, request: WriteRequest): Promise<Written> {
  const finalSize = request.message.size;
  return finalSize <= request.chunkSize ? writeSmall(client, request) : writeStreamed(client, request);
}
