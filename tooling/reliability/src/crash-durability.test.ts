// Crash durability: `postern start` with a durable store takes mail from several sessions, is
// killed with SIGKILL in the middle of it, and is started again on the same config and data.
// Every message that was answered 250 must be in the store; nothing half-written may be.
// Repeated for each durable store: Maildir, PostgreSQL, and the outbound queue (filesystem and
// PostgreSQL).
//   pnpm --filter @postern/reliability test:crash
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { FsQueueStore, PgQueueStore, type QueueStore } from "@postern/outbound";
import { openPostgresMailStore } from "@postern/store-postgres";
import { sendMail } from "@postern/testing";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { endMarker, midLoad, startLoad } from "./support/load.ts";
import { freePort, startPostern, writeConfig } from "./support/postern-process.ts";
import { malformation } from "./support/well-formed.ts";

const ackEarlyStore = fileURLToPath(new URL("./support/ack-early-store.ts", import.meta.url));
const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
/** Unique per run, so parallel runs (and other test files) never share a schema. */
const schemaSuffix = `${process.pid}_${Date.now().toString(36)}`;
const schemasToDrop: string[] = [];

afterAll(async () => {
  if (schemasToDrop.length === 0) return;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const schema of schemasToDrop) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
});

interface StoredCopy {
  messageId: string | undefined;
  bytes: Buffer;
}

interface DurableStore {
  name: string;
  /** The recipient the load sends to (a local one, or a remote one for the outbound queue). */
  recipient: string;
  /** Plugin entries of postern.yaml, after @postern/recipients. */
  plugins(dir: string): unknown[];
  /** Everything the store holds once the server is stopped. */
  read(dir: string): Promise<StoredCopy[]>;
}

const messageIdOf = (bytes: Buffer): string | undefined => {
  const end = bytes.indexOf("\r\n\r\n");
  const header = bytes.subarray(0, end === -1 ? bytes.length : end).toString("latin1");
  return /^Message-ID:[ \t]*(<[^>\r\n]+>)/im.exec(header)?.[1];
};

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function readQueue(store: QueueStore): Promise<StoredCopy[]> {
  await store.open();
  try {
    const copies: StoredCopy[] = [];
    for (const message of await store.list({ limit: 100_000 })) {
      const bytes = await readAll(await store.body(message.id));
      copies.push({ messageId: messageIdOf(bytes), bytes });
    }
    return copies;
  } finally {
    await store.close();
  }
}

const stores: DurableStore[] = [
  {
    name: "@postern/store-maildir",
    recipient: "user@crash.test",
    plugins: (dir) => [{ package: "@postern/store-maildir", options: { root: join(dir, "maildir") } }],
    async read(dir) {
      const copies: StoredCopy[] = [];
      for (const folder of ["new", "cur"]) {
        const path = join(dir, "maildir", "crash.test", "user", folder);
        for (const name of await readdir(path).catch(() => [])) {
          const bytes = await readFile(join(path, name));
          copies.push({ messageId: messageIdOf(bytes), bytes });
        }
      }
      return copies;
    },
  },
  {
    name: "@postern/store-postgres",
    recipient: "user@crash.test",
    plugins: () => {
      schemasToDrop.push(`reliability_mail_${schemaSuffix}`);
      return [
        {
          package: "@postern/store-postgres",
          options: { connectionString: databaseUrl, schema: `reliability_mail_${schemaSuffix}` },
        },
      ];
    },
    async read() {
      const store = openPostgresMailStore({
        connectionString: databaseUrl,
        schema: `reliability_mail_${schemaSuffix}`,
      });
      try {
        const copies: StoredCopy[] = [];
        for (let after: string | undefined; ; ) {
          const page = await store.list("user@crash.test", { limit: 500, ...(after ? { after } : {}) });
          if (page.length === 0) break;
          for (const copy of page)
            copies.push({ messageId: copy.messageIdHeader ?? undefined, bytes: await store.read(copy.id) });
          after = page.at(-1)!.id;
        }
        return copies;
      } finally {
        await store.close();
      }
    },
  },
  {
    name: "@postern/outbound (filesystem queue)",
    recipient: "someone@remote.test",
    plugins: (dir) => [
      {
        package: "@postern/outbound",
        // Queue only: nothing leaves, so the queue holds everything that was acknowledged.
        options: { queue: { type: "fs", dir: join(dir, "queue") }, worker: { enabled: false } },
      },
    ],
    read: (dir) => readQueue(new FsQueueStore({ dir: join(dir, "queue") })),
  },
  {
    name: "@postern/outbound (PostgreSQL queue)",
    recipient: "someone@remote.test",
    plugins: () => {
      schemasToDrop.push(`reliability_queue_${schemaSuffix}`);
      return [
        {
          package: "@postern/outbound",
          options: {
            queue: { type: "postgres", connectionString: databaseUrl, schema: `reliability_queue_${schemaSuffix}` },
            worker: { enabled: false },
          },
        },
      ];
    },
    read: () =>
      readQueue(new PgQueueStore({ connectionString: databaseUrl, schema: `reliability_queue_${schemaSuffix}` })),
  },
];

interface CrashOutcome {
  acknowledged: Set<string>;
  stored: StoredCopy[];
  /** Acknowledged, but not in the store after the restart. */
  lost: string[];
}

/** Load from 8 sessions, SIGKILL mid-transaction, restart, one more message, stop, read the store. */
async function crashAndRestart(store: DurableStore, dir: string): Promise<CrashOutcome> {
  const port = await freePort();
  const config = await writeConfig(dir, {
    hostname: "mx.crash.test",
    listeners: [{ address: "127.0.0.1", port }],
    spoolDir: join(dir, "spool"),
    log: { level: "warn" },
    plugins: [
      // Remote recipients are relayed for loopback clients (the outbound queue takes them).
      { package: "@postern/recipients", options: { domains: ["crash.test"], relay: { networks: ["127.0.0.0/8"] } } },
      ...store.plugins(dir),
    ],
  });

  const first = await startPostern(config);
  const load = startLoad({ port, sessions: 8, recipient: store.recipient, tag: "crash" });
  // Kill while the sessions are in the middle of transactions (one at least awaits its reply).
  await midLoad(load, 40);
  first.child.kill("SIGKILL");
  expect(await first.exited).toBe("SIGKILL");
  load.stop();
  await load.finished;
  expect(load.refused.size, "the server refused messages under load").toBe(0);

  // Start again on the same data: leftovers of the crash must not stop it.
  const second = await startPostern(config);
  const after = await sendMail({ port, to: store.recipient, raw: "Subject: after restart\r\n\r\nhello\r\n" });
  expect(after.response).toMatch(/^250 /);
  second.child.kill("SIGTERM");
  await second.exited;

  const stored = await store.read(dir);
  const storedIds = new Set(stored.map((copy) => copy.messageId));
  return { acknowledged: load.acknowledged, stored, lost: [...load.acknowledged].filter((id) => !storedIds.has(id)) };
}

describe.each(stores)("crash durability: $name", (store) => {
  it("keeps every acknowledged message across SIGKILL and restart, and nothing half-written", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-crash-"));
    try {
      const { acknowledged, stored, lost } = await crashAndRestart(store, dir);
      expect(lost, `acknowledged but not stored (of ${acknowledged.size})`).toEqual([]);
      for (const copy of stored) {
        expect(malformation(copy.bytes), `stored ${copy.messageId}`).toBeUndefined();
        if (copy.messageId?.includes("@load.test")) expect(copy.bytes.includes(endMarker)).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("crash durability: negative control", () => {
  it("catches a store that acknowledges before it has written", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-crash-"));
    try {
      const broken: DurableStore = {
        name: "ack-early",
        recipient: "user@crash.test",
        plugins: (folder) => [{ package: ackEarlyStore, options: { dir: folder } }],
        async read(folder) {
          const names = (await readdir(folder)).filter((name) => name.endsWith(".eml"));
          return Promise.all(
            names.map(async (name) => {
              const bytes = await readFile(join(folder, name));
              return { messageId: messageIdOf(bytes), bytes };
            }),
          );
        },
      };
      const { lost } = await crashAndRestart(broken, dir);
      expect(lost.length).toBeGreaterThan(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
