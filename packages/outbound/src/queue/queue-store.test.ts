// One conformance suite for every queue store: the filesystem spool and PostgreSQL must behave
// the same to the delivery code. Store-specific behaviour (crash recovery of half-written files,
// the spool lock) is tested at the end.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import pg from "pg";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsQueueStore, SpoolLockedError } from "./fs-store.ts";
import { PgQueueStore } from "./pg-store.ts";
import { readSpoolHead } from "./spool-file.ts";
import type { MessageEnvelope, QueueStore, RecipientOutcome } from "./store.ts";

const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

interface Harness {
  store: QueueStore;
  /** Closes the store and opens a new instance on the same data (a restart). */
  reopen(): Promise<QueueStore>;
  cleanup(): Promise<void>;
}

const backends: { name: string; create(): Promise<Harness> }[] = [
  {
    name: "fs",
    async create() {
      const dir = await mkdtemp(join(tmpdir(), "postern-outbound-spool-"));
      let store = new FsQueueStore({ dir });
      await store.open();
      return {
        get store() {
          return store;
        },
        async reopen() {
          await store.close();
          store = new FsQueueStore({ dir });
          await store.open();
          return store;
        },
        async cleanup() {
          await store.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: "postgres",
    async create() {
      const schema = `outbound_conformance_${randomBytes(4).toString("hex")}`;
      let store = new PgQueueStore({ connectionString: databaseUrl, schema, maxConnections: 4 });
      await store.open();
      return {
        get store() {
          return store;
        },
        async reopen() {
          await store.close();
          store = new PgQueueStore({ connectionString: databaseUrl, schema, maxConnections: 4 });
          await store.open();
          return store;
        },
        async cleanup() {
          await store.close();
          const client = new pg.Client({ connectionString: databaseUrl });
          await client.connect();
          await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          await client.end();
        },
      };
    },
  },
];

let sequence = 0;
function envelope(overrides: Partial<MessageEnvelope> = {}): MessageEnvelope {
  sequence++;
  return {
    id: `T${Date.now().toString(36).toUpperCase()}${sequence}${randomBytes(3).toString("hex").toUpperCase()}`,
    from: "sender@example.org",
    createdAt: Date.now(),
    size: 42,
    requireTls: false,
    smtpUtf8: false,
    bodyType: "7bit",
    dsn: { ret: "HDRS", envid: "env-1" },
    kind: "relay",
    ...overrides,
  };
}

const body = Buffer.from("Subject: hi\r\n\r\nHello\r\n");
const ok = { code: 250, status: "2.0.0", text: "Ok", remote: "mx.example.com [192.0.2.1]" };
const soft = { code: 451, status: "4.3.0", text: "Try later" };

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(backends)("queue store conformance: $name", (backend) => {
  let harness: Harness;
  beforeEach(async () => {
    harness = await backend.create();
  });
  afterEach(async () => {
    await harness.cleanup();
  });

  it("is ready while open", async () => {
    await expect(harness.store.ready()).resolves.toBeUndefined();
  });

  it("gives back bodies of every size byte for byte: empty, one byte, one over 256 KB, several MB", async () => {
    const { store } = harness;
    const sizes = [0, 1, 256 * 1024 + 1, 3 * 1024 * 1024 + 7];
    const bodies = sizes.map((size) => randomBytes(size));
    const messages = sizes.map((size) => envelope({ size }));
    for (const [n, message] of messages.entries()) {
      // As the queue hook hands them over: a Buffer up to the store's limit, a stream beyond it.
      const bytes = bodies[n]!;
      await store.enqueue(message, [{ address: `r${n}@example.com` }], n < 2 ? bytes : Readable.from([bytes]));
    }
    const reopened = await harness.reopen();
    for (const [n, message] of messages.entries()) {
      expect((await readAll(await reopened.body(message.id))).equals(bodies[n]!), `${sizes[n]} bytes`).toBe(true);
    }
  });

  it("reads a just-enqueued body back the same before and after its first attempt; not once deleted", async () => {
    const { store } = harness;
    const bytes = randomBytes(40_000);
    const message = envelope({ size: bytes.length });
    await store.enqueue(message, [{ address: "a@example.com" }], bytes);
    expect((await readAll(await store.body(message.id))).equals(bytes)).toBe(true);
    const [claim] = await store.claim({ worker: "w1", limit: 1, leaseMs: 10_000 });
    expect(claim?.message.id).toBe(message.id);
    const deferred = { index: 0, result: "deferred" as const, reply: soft, retryAfterMs: 0 };
    expect(await store.complete("w1", message.id, [deferred])).toEqual([0]);
    expect((await readAll(await store.body(message.id))).equals(bytes)).toBe(true);
    expect(await store.delete(message.id)).toBe(true);
    await expect(store.body(message.id)).rejects.toThrow();
  });

  it("stores a message durably with its recipients and bytes", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(
      message,
      [
        { address: "a@Example.COM", notify: ["FAILURE", "DELAY"], orcpt: "rfc822;a@example.com" },
        { address: "b@other.test" },
      ],
      Readable.from([body.subarray(0, 5), body.subarray(5)]),
    );
    const reopened = await harness.reopen();
    const stored = await reopened.get(message.id);
    expect(stored).toMatchObject({ id: message.id, from: "sender@example.org", dsn: { ret: "HDRS", envid: "env-1" } });
    expect(stored!.recipients).toMatchObject([
      {
        index: 0,
        address: "a@Example.COM",
        domain: "example.com",
        notify: ["FAILURE", "DELAY"],
        state: "queued",
        attempts: 0,
      },
      { index: 1, address: "b@other.test", domain: "other.test", state: "queued", attempts: 0 },
    ]);
    expect(stored!.recipients[1]!.notify).toBeUndefined();
    expect((await readAll(await reopened.body(message.id))).equals(body)).toBe(true);
    expect((await reopened.list()).map((entry) => entry.id)).toEqual([message.id]);
  });

  it("claims due recipients once; a lease hides them from other workers until it runs out", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com" }, { address: "b@example.com" }], body);
    const first = await store.claim({ worker: "w1", limit: 10, leaseMs: 300 });
    expect(first).toHaveLength(1);
    expect(first[0]!.message.id).toBe(message.id);
    expect(first[0]!.recipients.map((recipient) => recipient.index)).toEqual([0, 1]);
    expect(await store.claim({ worker: "w2", limit: 10, leaseMs: 300 })).toEqual([]);
    expect((await store.stats()).active).toBe(2);
    await sleep(450);
    const second = await store.claim({ worker: "w2", limit: 10, leaseMs: 5000 });
    expect(second[0]!.recipients).toHaveLength(2);
    // w1 lost the lease: its outcome is not recorded over w2's claim.
    expect(await store.complete("w1", message.id, [{ index: 0, result: "delivered", reply: ok }])).toEqual([]);
    expect((await store.get(message.id))!.recipients[0]!.state).toBe("queued");
  });

  it("claims whole deliveries (one message, one domain) up to the limit", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(
      message,
      [{ address: "a@one.test" }, { address: "b@two.test" }, { address: "c@one.test" }, { address: "d@one.test" }],
      body,
    );
    const [first] = await store.claim({ worker: "w1", limit: 1, leaseMs: 10_000 });
    expect(first!.recipients.map((recipient) => recipient.address)).toEqual(["a@one.test", "c@one.test", "d@one.test"]);
    const [second] = await store.claim({ worker: "w2", limit: 1, leaseMs: 10_000 });
    expect(second!.recipients.map((recipient) => recipient.address)).toEqual(["b@two.test"]);
  });

  it("renews leases so a long delivery keeps its claim", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com" }], body);
    await store.claim({ worker: "w1", limit: 10, leaseMs: 300 });
    await sleep(200);
    expect(await store.renew("w1", 600)).toBe(1);
    await sleep(200);
    expect(await store.claim({ worker: "w2", limit: 10, leaseMs: 300 })).toEqual([]);
  });

  it("records outcomes per recipient and removes the message when none is left", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(
      message,
      [{ address: "a@example.com" }, { address: "b@example.com" }, { address: "c@x.test" }],
      body,
    );
    const [claim] = await store.claim({ worker: "w1", limit: 10, leaseMs: 10_000 });
    expect(claim!.recipients).toHaveLength(3);
    const outcomes: RecipientOutcome[] = [
      { index: 0, result: "delivered", reply: ok },
      { index: 1, result: "deferred", reply: soft, retryAfterMs: 60_000 },
      { index: 2, result: "bounced", reply: { code: 550, status: "5.1.1", text: "No such user" } },
    ];
    expect(await store.complete("w1", message.id, outcomes)).toEqual([0, 1, 2]);
    const stored = (await store.get(message.id))!;
    expect(stored.recipients.map((recipient) => [recipient.state, recipient.attempts])).toEqual([
      ["delivered", 1],
      ["queued", 1],
      ["bounced", 1],
    ]);
    expect(stored.recipients[1]!.lastReply).toMatchObject(soft);
    expect(stored.recipients[1]!.nextAttemptAt).toBeGreaterThan(Date.now() + 50_000);
    // Deferred: not due yet.
    expect(await store.claim({ worker: "w1", limit: 10, leaseMs: 10_000 })).toEqual([]);
    expect(await store.nextDue()).toBeGreaterThan(Date.now() + 50_000);
    const stats = await store.stats();
    expect(stats).toMatchObject({ messages: 1, queued: 1, deferred: 1, active: 0 });
    expect(stats.domains).toEqual([{ domain: "example.com", queued: 1 }]);
    // The operator forces a retry; the recipient is due at once and keeps its history.
    expect(await store.retry(message.id)).toBe(1);
    const [again] = await store.claim({ worker: "w1", limit: 10, leaseMs: 10_000 });
    expect(again!.recipients.map((recipient) => [recipient.index, recipient.attempts])).toEqual([[1, 1]]);
    expect(await store.complete("w1", message.id, [{ index: 1, result: "delivered", reply: ok }])).toEqual([1]);
    expect(await store.get(message.id)).toBeUndefined();
    await expect(store.body(message.id)).rejects.toThrow();
    expect((await store.stats()).messages).toBe(0);
  });

  it("remembers that a delay report went out, across a reopen, and keeps it on later attempts", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com", notify: ["DELAY"] }, { address: "b@example.com" }], body);
    const [claim] = await store.claim({ worker: "w1", limit: 10, leaseMs: 10_000 });
    expect(claim!.recipients.map((recipient) => recipient.delayReportedAt)).toEqual([undefined, undefined]);
    await store.complete("w1", message.id, [
      { index: 0, result: "deferred", reply: soft, retryAfterMs: 0, delayReported: true },
      { index: 1, result: "deferred", reply: soft, retryAfterMs: 0 },
    ]);
    const reopened = await harness.reopen();
    const [again] = await reopened.claim({ worker: "w2", limit: 10, leaseMs: 10_000 });
    const [first, second] = again!.recipients;
    expect(first!.delayReportedAt).toBeGreaterThan(Date.now() - 60_000);
    expect(second!.delayReportedAt).toBeUndefined();
    await reopened.complete("w2", message.id, [{ index: 0, result: "deferred", reply: soft, retryAfterMs: 0 }]);
    expect((await reopened.get(message.id))!.recipients[0]!.delayReportedAt).toBe(first!.delayReportedAt);
  });

  it("releases claims without counting an attempt", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com" }], body);
    await store.claim({ worker: "w1", limit: 10, leaseMs: 60_000 });
    await store.release("w1", message.id, [0]);
    const [claim] = await store.claim({ worker: "w2", limit: 10, leaseMs: 60_000 });
    expect(claim!.recipients[0]!.attempts).toBe(0);
  });

  it("is next due when a lease ends, and at once when the lease is given back or its attempt deferred", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com" }], body);
    expect(await store.nextDue()).toBeLessThanOrEqual(Date.now());
    await store.claim({ worker: "w1", limit: 10, leaseMs: 60_000 });
    expect(await store.nextDue()).toBeGreaterThan(Date.now() + 50_000);
    expect(await store.claim({ worker: "w2", limit: 10, leaseMs: 60_000 })).toEqual([]);
    await store.release("w1", message.id, [0]);
    expect(await store.nextDue()).toBeLessThanOrEqual(Date.now());
    const [claim] = await store.claim({ worker: "w2", limit: 10, leaseMs: 60_000 });
    expect(claim!.recipients.map((recipient) => recipient.index)).toEqual([0]);
    expect(await store.nextDue()).toBeGreaterThan(Date.now() + 50_000);
    await store.complete("w2", message.id, [{ index: 0, result: "deferred", reply: soft, retryAfterMs: 0 }]);
    expect(await store.nextDue()).toBeLessThanOrEqual(Date.now());
    expect(await store.claim({ worker: "w3", limit: 10, leaseMs: 60_000 })).toHaveLength(1);
  });

  it("releases claims for later without counting an attempt (a throttle held them back)", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com" }, { address: "b@example.com" }], body);
    await store.claim({ worker: "w1", limit: 10, leaseMs: 60_000 });
    const before = Date.now();
    await store.release("w1", message.id, [0, 1], { delayMs: 30_000 });
    // Not due now, for anyone; due again after the delay, with nothing else changed.
    expect(await store.claim({ worker: "w2", limit: 10, leaseMs: 60_000 })).toEqual([]);
    const stored = (await store.get(message.id))!;
    for (const recipient of stored.recipients) {
      expect(recipient).toMatchObject({ state: "queued", attempts: 0 });
      expect(recipient.lastReply).toBeUndefined();
      expect(recipient.nextAttemptAt).toBeGreaterThanOrEqual(before + 29_000);
    }
    expect(await store.nextDue()).toBeGreaterThanOrEqual(before + 29_000);
    // Another worker's release does not move a recipient it does not hold.
    await store.retry(message.id);
    const [claim] = await store.claim({ worker: "w3", limit: 10, leaseMs: 60_000 });
    expect(claim!.recipients).toHaveLength(2);
    await store.release("w1", message.id, [0, 1], { delayMs: 30_000 });
    expect((await store.get(message.id))!.recipients[0]!.nextAttemptAt).toBeLessThanOrEqual(Date.now());
    // Survives a restart of the store.
    await store.release("w3", message.id, [0, 1], { delayMs: 30_000 });
    const reopened = await harness.reopen();
    expect(await reopened.claim({ worker: "w4", limit: 10, leaseMs: 60_000 })).toEqual([]);
  });

  it("never hands one recipient to two concurrent claimers", async () => {
    const { store } = harness;
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const message = envelope();
      ids.push(message.id);
      await store.enqueue(
        message,
        Array.from({ length: 5 }, (_, n) => ({ address: `r${n}@d${n % 2}.test` })),
        body,
      );
    }
    const seen = new Map<string, string>();
    const worker = async (name: string) => {
      for (;;) {
        const claims = await store.claim({ worker: name, limit: 3, leaseMs: 60_000 });
        if (claims.length === 0) return;
        for (const claim of claims) {
          for (const recipient of claim.recipients) {
            const key = `${claim.message.id}:${recipient.index}`;
            expect(seen.get(key), `${key} claimed twice`).toBeUndefined();
            seen.set(key, name);
          }
        }
      }
    };
    await Promise.all([worker("a"), worker("b"), worker("c")]);
    expect(seen.size).toBe(60);
  });

  it("removes a message once its last domain completes, when its domains complete at the same time", async () => {
    const { store } = harness;
    const ids: string[] = [];
    for (let i = 0; i < 15; i++) {
      const message = envelope();
      ids.push(message.id);
      await store.enqueue(
        message,
        [{ address: "a@one.test" }, { address: "b@two.test" }, { address: "c@one.test" }],
        body,
      );
    }
    // Each message's two domains complete at the same time, as two deliveries finishing together.
    const claims = await store.claim({ worker: "w1", limit: 30, leaseMs: 60_000 });
    const completions = claims.flatMap((claim) =>
      ["one.test", "two.test"].map((domain) =>
        store.complete(
          "w1",
          claim.message.id,
          claim.recipients
            .filter((recipient) => recipient.domain === domain)
            .map((recipient) => ({ index: recipient.index, result: "delivered" as const, reply: ok })),
        ),
      ),
    );
    expect(completions.length).toBe(30);
    await Promise.all(completions);
    for (const id of ids) expect(await store.get(id), id).toBeUndefined();
    expect((await store.stats()).messages).toBe(0);
  });

  it("retries everything, deletes, and keeps a small cache", async () => {
    const { store } = harness;
    const one = envelope();
    const two = envelope();
    await store.enqueue(one, [{ address: "a@example.com" }], body);
    await store.enqueue(two, [{ address: "b@example.com" }], body);
    for (const claim of await store.claim({ worker: "w", limit: 10, leaseMs: 10_000 })) {
      await store.complete(
        "w",
        claim.message.id,
        claim.recipients.map((recipient) => ({
          index: recipient.index,
          result: "deferred",
          reply: soft,
          retryAfterMs: 3_600_000,
        })),
      );
    }
    expect(await store.claim({ worker: "w", limit: 10, leaseMs: 10_000 })).toEqual([]);
    expect(await store.retry()).toBe(2);
    expect(await store.claim({ worker: "w", limit: 10, leaseMs: 10 })).toHaveLength(2);
    expect(await store.delete(one.id)).toBe(true);
    expect(await store.delete(one.id)).toBe(false);
    expect((await store.list()).map((message) => message.id)).toEqual([two.id]);

    expect(await store.loadCached("mta-sts:example.com")).toBeUndefined();
    await store.saveCached("mta-sts:example.com", { id: "abc", mode: "enforce", mx: ["mx.example.com"] });
    await store.saveCached("mta-sts:example.com", { id: "def", mode: "testing", mx: ["mx.example.com"] });
    const reopened = await harness.reopen();
    expect(await reopened.loadCached("mta-sts:example.com")).toEqual({
      id: "def",
      mode: "testing",
      mx: ["mx.example.com"],
    });
  });

  it("holds a message out of delivery and out of retry until it is released, across a reopen", async () => {
    const { store } = harness;
    const held = envelope();
    const other = envelope();
    await store.enqueue(held, [{ address: "a@example.com" }, { address: "b@example.net" }], body);
    await store.enqueue(other, [{ address: "c@example.com" }], body);
    expect(await store.hold(held.id)).toBe(2);
    expect(await store.hold(held.id)).toBe(0);
    expect((await store.get(held.id))?.recipients.map((recipient) => recipient.state)).toEqual(["held", "held"]);
    expect(await store.stats()).toMatchObject({ messages: 2, queued: 1, held: 2 });
    const claimed = await store.claim({ worker: "w", limit: 10, leaseMs: 10_000 });
    expect(claimed.map((claim) => claim.message.id)).toEqual([other.id]);
    // The other message delivered: the held one stays, whole; retry does not release it.
    await store.complete("w", other.id, [{ index: 0, result: "delivered", reply: ok }]);
    expect(await store.retry()).toBe(0);
    const reopened = await harness.reopen();
    expect(await reopened.claim({ worker: "w", limit: 10, leaseMs: 10_000 })).toEqual([]);
    expect((await reopened.list()).map((message) => message.id)).toEqual([held.id]);

    expect(await reopened.unhold(held.id)).toBe(2);
    expect(await reopened.unhold(held.id)).toBe(0);
    expect(await reopened.stats()).toMatchObject({ queued: 2, held: 0 });
    const due = await reopened.claim({ worker: "w", limit: 10, leaseMs: 10_000 });
    expect(due.flatMap((claim) => claim.recipients.map((recipient) => recipient.address)).sort()).toEqual([
      "a@example.com",
      "b@example.net",
    ]);
    expect(await reopened.hold("nothing-here")).toBe(0);
  });

  it("lets a recipient being delivered finish its attempt when its message is held", async () => {
    const { store } = harness;
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com" }, { address: "b@example.net" }], body);
    const [claim] = await store.claim({ worker: "w", limit: 1, leaseMs: 10_000 });
    const leased = claim!.recipients[0]!;
    // Only the recipient not under the live lease is held.
    expect(await store.hold(message.id)).toBe(1);
    expect(await store.complete("w", message.id, [{ index: leased.index, result: "delivered", reply: ok }])).toEqual([
      leased.index,
    ]);
    // One recipient delivered, one held: the message stays until the held one is done.
    const kept = await store.get(message.id);
    expect(kept?.recipients.map((recipient) => recipient.state).sort()).toEqual(["delivered", "held"]);
  });

  it("refuses unsafe queue IDs and empty recipient lists", async () => {
    const { store } = harness;
    await expect(store.enqueue(envelope({ id: "../escape" }), [{ address: "a@example.com" }], body)).rejects.toThrow(
      /invalid queue ID/,
    );
    await expect(store.enqueue(envelope(), [], body)).rejects.toThrow(/at least one recipient/);
  });
});

describe("filesystem spool specifics", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const newDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-outbound-spool-"));
    dirs.push(dir);
    return dir;
  };

  /** Rewrites the body of a queued message in its .msg file, behind the store's back. */
  const replaceBody = async (dir: string, id: string, text: string) => {
    const path = join(dir, "msg", `${id}.msg`);
    const file = await readFile(path);
    const handle = await open(path, "r");
    const { bodyStart } = await readSpoolHead(handle, path).finally(() => handle.close());
    await writeFile(path, Buffer.concat([file.subarray(0, bodyStart), Buffer.from(text)]));
  };

  /** A spool with one message queued, closed again. */
  const spoolWithOneMessage = async () => {
    const dir = await newDir();
    const store = new FsQueueStore({ dir });
    await store.open();
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com" }], body);
    await store.close();
    return { dir, message };
  };

  it("keeps a message in one file: its record ahead of its bytes", async () => {
    const { dir, message } = await spoolWithOneMessage();
    expect(await readdir(join(dir, "msg"))).toEqual([`${message.id}.msg`]);
    const file = await readFile(join(dir, "msg", `${message.id}.msg`));
    const firstLine = file.subarray(0, file.indexOf("\n")).toString();
    expect(firstLine).toMatch(/^Q2 \d+$/);
    const recordLength = Number(firstLine.slice(3));
    const recordStart = firstLine.length + 1;
    const record = JSON.parse(file.subarray(recordStart, recordStart + recordLength).toString());
    expect(record).toMatchObject({ envelope: message, recipients: [{ address: "a@example.com", state: "queued" }] });
    expect(file.subarray(recordStart + recordLength).equals(Buffer.concat([Buffer.from("\n"), body]))).toBe(true);
  });

  it("serves a just-enqueued body from memory until the message is removed, and from the file after a reopen", async () => {
    const dir = await newDir();
    const store = new FsQueueStore({ dir });
    await store.open();
    const message = envelope();
    await store.enqueue(message, [{ address: "a@example.com" }], body);
    // The file is on disk and is the truth; the copy in memory spares the delivery reading it.
    await replaceBody(dir, message.id, "changed behind the store's back");
    expect((await readAll(await store.body(message.id))).equals(body)).toBe(true);
    await store.delete(message.id);
    await expect(store.body(message.id)).rejects.toMatchObject({ code: "ENOENT" });
    expect(await readdir(join(dir, "msg"))).toEqual([]);

    const kept = envelope();
    await store.enqueue(kept, [{ address: "a@example.com" }], body);
    await store.close();
    await replaceBody(dir, kept.id, "read from the file");
    const reopened = new FsQueueStore({ dir });
    await reopened.open();
    expect((await readAll(await reopened.body(kept.id))).toString()).toBe("read from the file");
    await reopened.close();
  });

  it("reads a later record from its .json, and removes a .json whose message is gone", async () => {
    const dir = await newDir();
    const store = new FsQueueStore({ dir });
    await store.open();
    const deferred = envelope();
    const delivered = envelope();
    await store.enqueue(deferred, [{ address: "a@example.com" }], body);
    await store.enqueue(delivered, [{ address: "b@example.com" }], body);
    const claims = await store.claim({ worker: "w", limit: 10, leaseMs: 60_000 });
    expect(claims).toHaveLength(2);
    await store.complete("w", deferred.id, [{ index: 0, result: "deferred", reply: soft, retryAfterMs: 60_000 }]);
    await store.close();
    expect((await readdir(join(dir, "msg"))).sort()).toEqual(
      [`${deferred.id}.json`, `${deferred.id}.msg`, `${delivered.id}.msg`].sort(),
    );
    // What a crash between the two removals of a delivered message leaves: its .json alone.
    await writeFile(join(dir, "msg", `${delivered.id}.json`), await readFile(join(dir, "msg", `${deferred.id}.json`)));
    await rm(join(dir, "msg", `${delivered.id}.msg`));
    const reopened = new FsQueueStore({ dir });
    await reopened.open();
    expect((await reopened.list()).map((entry) => entry.id)).toEqual([deferred.id]);
    expect((await reopened.get(deferred.id))?.recipients[0]).toMatchObject({
      state: "queued",
      attempts: 1,
      lastReply: soft,
    });
    expect((await readAll(await reopened.body(deferred.id))).equals(body)).toBe(true);
    expect((await readdir(join(dir, "msg"))).sort()).toEqual([`${deferred.id}.json`, `${deferred.id}.msg`].sort());
    // Delivered at last: both of its files go (the .json is known from the reopen).
    expect(await reopened.retry(deferred.id)).toBe(1);
    const [retried] = await reopened.claim({ worker: "w", limit: 10, leaseMs: 60_000 });
    expect(retried?.message.id).toBe(deferred.id);
    await reopened.complete("w", deferred.id, [{ index: 0, result: "delivered", reply: ok }]);
    expect(await readdir(join(dir, "msg"))).toEqual([]);
    // And when the .json was written by this same instance.
    const again = envelope();
    await reopened.enqueue(again, [{ address: "a@example.com" }], body);
    await reopened.claim({ worker: "w", limit: 10, leaseMs: 60_000 });
    await reopened.complete("w", again.id, [{ index: 0, result: "deferred", reply: soft, retryAfterMs: 0 }]);
    expect((await readdir(join(dir, "msg"))).sort()).toEqual([`${again.id}.json`, `${again.id}.msg`].sort());
    await reopened.claim({ worker: "w", limit: 10, leaseMs: 60_000 });
    await reopened.complete("w", again.id, [{ index: 0, result: "bounced", reply: soft }]);
    expect(await readdir(join(dir, "msg"))).toEqual([]);
    await reopened.close();
  });

  it("delivers and removes messages an older version queued as an .eml and a .json", async () => {
    const dir = await newDir();
    await mkdir(join(dir, "msg"), { recursive: true });
    const message = envelope();
    const record = {
      version: 1,
      envelope: message,
      recipients: [
        { index: 0, address: "a@example.com", domain: "example.com", state: "queued", attempts: 0, nextAttemptAt: 0 },
      ],
    };
    await writeFile(join(dir, "msg", `${message.id}.json`), JSON.stringify(record));
    await writeFile(join(dir, "msg", `${message.id}.eml`), body);
    // The older version's leftovers: an .eml never committed, and a .json whose .eml a crash lost.
    await writeFile(join(dir, "msg", "ORPHAN.eml"), "Subject: never acknowledged\r\n\r\n");
    await writeFile(join(dir, "msg", "LOST.json"), JSON.stringify({ ...record, envelope: envelope({ id: "LOST" }) }));
    const store = new FsQueueStore({ dir });
    await store.open();
    expect((await store.list()).map((entry) => entry.id)).toEqual([message.id]);
    const shared = new FsQueueStore({ dir, shared: true });
    await shared.open();
    expect((await shared.list()).map((entry) => entry.id)).toEqual([message.id]);
    expect((await readAll(await shared.body(message.id))).equals(body)).toBe(true);
    await shared.close();
    const [claim] = await store.claim({ worker: "w", limit: 10, leaseMs: 60_000 });
    expect(claim?.message.id).toBe(message.id);
    expect((await readAll(await store.body(message.id))).equals(body)).toBe(true);
    expect(await store.complete("w", message.id, [{ index: 0, result: "delivered", reply: ok }])).toEqual([0]);
    expect(await readdir(join(dir, "msg"))).toEqual([]);
    await store.close();
  });

  it("drops half-written messages on open and keeps committed ones", async () => {
    const { dir, message } = await spoolWithOneMessage();
    // What a crash in the middle of writing leaves behind: files in tmp/ only (a name in msg/ is
    // always a whole file, renamed there once written).
    await mkdir(join(dir, "tmp"), { recursive: true });
    await writeFile(join(dir, "tmp", "PARTIAL.1234.msg"), "Q2 100\n{");
    await writeFile(join(dir, "tmp", "PARTIAL.1235.json"), "{");
    const reopened = new FsQueueStore({ dir });
    await reopened.open();
    expect((await reopened.list()).map((entry) => entry.id)).toEqual([message.id]);
    expect(await readdir(join(dir, "msg"))).toEqual([`${message.id}.msg`]);
    expect(await readdir(join(dir, "tmp"))).toEqual([]);
    await reopened.close();
  });

  it("refuses to open a spool with a file in msg/ that is not a queue file, naming it", async () => {
    const dir = await newDir();
    await mkdir(join(dir, "msg"), { recursive: true });
    await writeFile(join(dir, "msg", "BROKEN.msg"), "Subject: not a queue file\r\n");
    const store = new FsQueueStore({ dir });
    await expect(store.open()).rejects.toThrow(`${join(dir, "msg", "BROKEN.msg")} is not a queue file`);
    await store.close();
    await writeFile(join(dir, "msg", "SHORT.msg"), "Q2 500\n{}");
    await rm(join(dir, "msg", "BROKEN.msg"));
    await expect(new FsQueueStore({ dir }).open()).rejects.toThrow(
      "is cut short: its record should be 500 bytes, 2 are there",
    );
  });

  it("keeps every one of many concurrent enqueues (they share fsyncs of msg/), each byte-exact", async () => {
    const dir = await newDir();
    const store = new FsQueueStore({ dir });
    await store.open();
    const messages = Array.from({ length: 30 }, (_, n) => ({
      envelope: envelope(),
      bytes: Buffer.from(`Subject: ${n}\r\n\r\n${"x".repeat(n * 100)}\r\n`),
    }));
    await Promise.all(
      messages.map(({ envelope: message, bytes }, n) =>
        store.enqueue(message, [{ address: `r${n}@example.com` }], n % 2 === 0 ? bytes : Readable.from([bytes])),
      ),
    );
    await store.close();
    const reopened = new FsQueueStore({ dir });
    await reopened.open();
    expect((await reopened.list()).length).toBe(messages.length);
    for (const { envelope: message, bytes } of messages) {
      const chunks: Buffer[] = [];
      for await (const chunk of await reopened.body(message.id)) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    }
    expect(await readdir(join(dir, "tmp"))).toEqual([]);
    await reopened.close();
  });

  it("lets one process own a spool; a shared opener reads and leaves requests for the owner", async () => {
    const dir = await newDir();
    const owner = new FsQueueStore({ dir });
    await owner.open();
    const message = envelope();
    await owner.enqueue(message, [{ address: "a@example.com" }], body);
    // The lock names this process; another process would be refused. Simulate one: PID 1, in
    // the bare-PID form of older versions (PID 1 started before the file was written).
    const ownLock = await readFile(join(dir, "lock"), "utf8");
    await writeFile(join(dir, "lock"), "1");
    await expect(new FsQueueStore({ dir }).open()).rejects.toBeInstanceOf(SpoolLockedError);
    const admin = new FsQueueStore({ dir, shared: true });
    await admin.open();
    expect(admin.owner).toBe(false);
    expect((await admin.get(message.id))?.recipients).toHaveLength(1);
    expect(await admin.hold(message.id)).toBe(1);
    await sleep(600);
    expect(await owner.claim({ worker: "w", limit: 10, leaseMs: 1000 })).toEqual([]);
    expect((await owner.get(message.id))?.recipients[0]?.state).toBe("held");
    expect(await admin.unhold(message.id)).toBe(1);
    await sleep(600);
    expect(await owner.stats()).toMatchObject({ queued: 0, held: 1 });
    expect(await owner.claim({ worker: "w", limit: 10, leaseMs: 1 })).toHaveLength(1);
    expect(await admin.delete(message.id)).toBe(true);
    expect(await owner.get(message.id)).toBeDefined();
    // The owner applies the request on its next claim (it looks at most twice a second).
    await sleep(600);
    expect(await owner.claim({ worker: "w", limit: 10, leaseMs: 1000 })).toEqual([]);
    expect(await owner.get(message.id)).toBeUndefined();
    await admin.close();
    await writeFile(join(dir, "lock"), ownLock);
    await owner.close();
    await expect(stat(join(dir, "lock"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  describe("a lock left behind", () => {
    const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    const startTimeOf = (pid: number) => {
      const text = readFileSync(`/proc/${pid}/stat`, "utf8");
      return text.slice(text.lastIndexOf(")") + 2).split(" ")[19]!;
    };
    const sleeper = async () => {
      const child = spawn("sleep", ["60"], { stdio: "ignore" });
      await new Promise((resolve) => child.once("spawn", resolve));
      return child;
    };

    it("is taken over when the PID it names now belongs to another live process", async () => {
      const dir = await newDir();
      const unrelated = await sleeper();
      try {
        const pidNamespace = await readlink("/proc/self/ns/pid");
        // From before a reboot, and from this boot but another process under the same PID.
        for (const identity of [
          { bootId: "00000000-0000-4000-8000-000000000000", startTime: startTimeOf(unrelated.pid!) },
          { bootId, startTime: "1" },
        ]) {
          await writeFile(join(dir, "lock"), JSON.stringify({ pid: unrelated.pid, pidNamespace, ...identity }));
          const store = new FsQueueStore({ dir });
          await store.open();
          expect(store.owner).toBe(true);
          expect(JSON.parse(await readFile(join(dir, "lock"), "utf8")).pid).toBe(process.pid);
          await store.close();
        }
      } finally {
        unrelated.kill();
      }
    });

    it("is refused, naming the owner, while the process that took it lives", async () => {
      const dir = await newDir();
      const owner = await sleeper();
      try {
        await writeFile(
          join(dir, "lock"),
          JSON.stringify({
            pid: owner.pid,
            bootId,
            startTime: startTimeOf(owner.pid!),
            pidNamespace: await readlink("/proc/self/ns/pid"),
            hostname: "mx1.test",
          }),
        );
        const refusal = await new FsQueueStore({ dir }).open().catch((error: unknown) => error);
        expect(refusal).toBeInstanceOf(SpoolLockedError);
        expect((refusal as SpoolLockedError).pid).toBe(owner.pid);
        expect((refusal as Error).message).toBe(
          `queue spool ${dir} is in use: held by process ${owner.pid} on mx1.test (lock file ${join(dir, "lock")}; it is released when its owner exits); one process owns a spool (use the PostgreSQL store to share a queue)`,
        );
      } finally {
        owner.kill();
      }
    });
  });
});
