// Reading back what a store holds after a fault test, and checking it against what the clients
// were told: every acknowledged message stored once and byte for byte; nothing stored half.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { QueueStore } from "@postern/outbound";
import { openPostgresMailStore } from "@postern/store-postgres";
import type { FaultLoad } from "./fault-load.ts";

export interface StoredCopy {
  readonly where: string;
  readonly messageId: string | undefined;
  readonly bytes: Buffer;
}

export function messageIdOf(bytes: Buffer): string | undefined {
  const end = bytes.indexOf("\r\n\r\n");
  const header = bytes.subarray(0, end === -1 ? bytes.length : end).toString("latin1");
  return /^Message-ID:[ \t]*(<[^>\r\n]+>)/im.exec(header)?.[1];
}

export async function readMaildir(root: string, address: string): Promise<StoredCopy[]> {
  const [user, domain] = address.split("@") as [string, string];
  const copies: StoredCopy[] = [];
  for (const folder of ["new", "cur"]) {
    const path = join(root, domain, user, folder);
    for (const name of await readdir(path).catch(() => [])) {
      const bytes = await readFile(join(path, name));
      copies.push({ where: `maildir ${folder}/${name}`, messageId: messageIdOf(bytes), bytes });
    }
  }
  return copies;
}

export async function readPostgresMail(
  connectionString: string,
  schema: string,
  address: string,
): Promise<StoredCopy[]> {
  const store = openPostgresMailStore({ connectionString, schema });
  try {
    const copies: StoredCopy[] = [];
    for (let after: string | undefined; ; ) {
      const page = await store.list(address, { limit: 500, ...(after ? { after } : {}) });
      if (page.length === 0) break;
      for (const copy of page) {
        const bytes = await store.read(copy.id);
        copies.push({ where: `postgres ${copy.id}`, messageId: messageIdOf(bytes), bytes });
      }
      after = page.at(-1)!.id;
    }
    return copies;
  } finally {
    await store.close();
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function readQueue(store: QueueStore): Promise<StoredCopy[]> {
  await store.open();
  try {
    const copies: StoredCopy[] = [];
    for (const message of await store.list({ limit: 100_000 })) {
      const bytes = await readAll(await store.body(message.id));
      copies.push({ where: `queue ${message.id}`, messageId: messageIdOf(bytes), bytes });
    }
    return copies;
  } finally {
    await store.close();
  }
}

export interface StoreCheck {
  /** Everything that breaks the promise: lost, duplicated, altered or half-stored messages. */
  problems: string[];
  /** Answered 4xx (or cut off) yet stored whole: allowed, the client sends again (a duplicate). */
  storedUnacknowledged: number;
}

/** `recipients`: only messages sent to these are expected in `stored`. */
export function checkStored(load: FaultLoad, stored: StoredCopy[], recipients: readonly string[]): StoreCheck {
  const problems: string[] = [];
  const byId = new Map<string, StoredCopy[]>();
  for (const copy of stored) {
    if (!copy.messageId) continue;
    byId.set(copy.messageId, [...(byId.get(copy.messageId) ?? []), copy]);
  }
  const wanted = new Set(recipients);
  const matches = (copy: StoredCopy, length: number, sha256: string) =>
    copy.bytes.length >= length &&
    createHash("sha256")
      .update(copy.bytes.subarray(copy.bytes.length - length))
      .digest("hex") === sha256;

  for (const [messageId, sent] of load.acknowledged) {
    if (!wanted.has(sent.recipient)) continue;
    const copies = byId.get(messageId) ?? [];
    if (copies.length === 0) problems.push(`acknowledged but not stored: ${messageId}`);
    else if (copies.length > 1) problems.push(`acknowledged once, stored ${copies.length} times: ${messageId}`);
    for (const copy of copies) {
      if (!matches(copy, sent.length, sent.sha256))
        problems.push(`stored other bytes than sent: ${messageId} (${copy.where})`);
    }
  }
  let storedUnacknowledged = 0;
  for (const [messageId, copies] of byId) {
    if (!messageId.endsWith("@load.test>")) continue;
    const sent = load.acknowledged.get(messageId) ?? load.notAcknowledged.get(messageId);
    if (!sent) {
      problems.push(`stored a message whose DATA was never completed: ${messageId}`);
      continue;
    }
    if (!load.acknowledged.has(messageId)) {
      storedUnacknowledged += copies.length;
      for (const copy of copies) {
        if (!matches(copy, sent.length, sent.sha256)) problems.push(`half-stored: ${messageId} (${copy.where})`);
      }
    }
  }
  return { problems, storedUnacknowledged };
}
