// The storage contract as executable checks. Every store (Maildir, PostgreSQL, LMTP, a webhook, or
// a third party's) is a plugin whose `queue` hook handles its routes and answers accept() only once
// the message is durable. Each check starts the real server with the store behind it, drives it
// over SMTP on loopback and looks at what the store holds through the store's own `read()`.
//
// The checks use node:assert only, so they run under any test runner; store-conformance.ts wraps
// them in a vitest `describe` block.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { accept, type Plugin } from "@postern/core";
import nodemailer from "nodemailer";
import { buildMessage } from "./message-builder.ts";
import type { SendError } from "./send.ts";
import { startTestServer, type TestServer } from "./test-server.ts";

/** A store set up for one check: the plugin under test and a way to look at what it stored. */
export interface StoreUnderTest {
  /** The store plugin; it must handle the route given in the options ("local" by default). */
  plugin: Plugin;
  /**
   * Every message the store holds for `recipient`, oldest first, as the final bytes (prepended
   * header fields + original message). A store that adds its own fields (Dovecot adds
   * Return-Path) strips them here. Must show only what a reader of the store would see: a
   * half-written message must not appear.
   */
  read(recipient: string): Promise<Buffer[]>;
  /** Make the next delivery fail part-way through writing (after some bytes went out). */
  breakStorage(): Promise<void>;
  /** Undo breakStorage(): deliveries work again. */
  restore(): Promise<void>;
  /** Remove everything the store created; called after each check, also after a failure. */
  cleanup(): Promise<void>;
}

export interface StoreConformanceOptions {
  /** Creates a fresh, empty store; called once per check. */
  createStore(): Promise<StoreUnderTest>;
  /** The route the store handles (default "local"). */
  route?: string;
  /** Three addresses the store delivers to (default alice@, bob@ and carol@example.test). */
  recipients?: readonly [string, string, string];
  /**
   * What a failed write answers. The contract is 451 4.3.0 for local stores; stores that hand
   * mail to a remote service answer 451 4.4.x (network). Default: code 451, status 4.3.0.
   */
  failure?: { code?: number; status?: RegExp };
  /** Size of the large message (default 30 MiB). */
  largeMessageBytes?: number;
  /**
   * How much more memory (heap + array buffers, confirmed after a full collection) the process
   * may hold from the call of the store's queue hook with the large message until the reply, as a
   * fraction of the message size (default 0.5). A store holding the whole message needs ≥ 1.0.
   */
  largeMessageMemoryFactor?: number;
  /** Parallel sessions in the concurrency check (default 12). */
  concurrency?: number;
}

/** What one check gets: the options with defaults applied. */
export interface ConformanceContext {
  readonly options: Required<Omit<StoreConformanceOptions, "failure">> & {
    failure: { code: number; status: RegExp };
  };
}

export interface ConformanceCheck {
  /** A sentence naming the rule, used as the test title. */
  readonly title: string;
  /** Suggested timeout for test runners. */
  readonly timeoutMs: number;
  run(context: ConformanceContext): Promise<void>;
}

const unownedRoute = "conformance:unowned";
const unownedDomain = "unrouted.test";

export function conformanceContext(options: StoreConformanceOptions): ConformanceContext {
  return {
    options: {
      createStore: options.createStore,
      route: options.route ?? "local",
      recipients: options.recipients ?? ["alice@example.test", "bob@example.test", "carol@example.test"],
      failure: { code: options.failure?.code ?? 451, status: options.failure?.status ?? /^4\.3\.0$/ },
      largeMessageBytes: options.largeMessageBytes ?? 30 * 1024 * 1024,
      largeMessageMemoryFactor: options.largeMessageMemoryFactor ?? 0.5,
      concurrency: options.concurrency ?? 12,
    },
  };
}

interface Witnessed {
  /** SHA-256 and length of message.stream() as the store was handed it. */
  sha256: string;
  size: number;
  prepended: string;
}

/**
 * Records, by Subject, the final message each store is handed: it runs in `queue` before the store
 * and returns nothing, so the store still decides. Hashing streams the message, never holding it.
 */
function witness(): { plugin: Plugin; seen: Map<string, Witnessed>; beforeStore: { listener?: () => Promise<void> } } {
  const seen = new Map<string, Witnessed>();
  const beforeStore: { listener?: () => Promise<void> } = {};
  const plugin: Plugin = {
    name: "conformance:witness",
    hooks: {
      data(_transaction, message) {
        // Stands in for the trace and Authentication-Results fields real plugins prepend.
        message.prepend("X-Conformance", "prepended by the conformance suite");
        return undefined;
      },
      async queue(_transaction, message) {
        const hash = createHash("sha256");
        let size = 0;
        // Only fields were put on top, so the final message is those fields + the received bytes.
        const prefixLength = message.size - message.receivedSize;
        const prefix: Buffer[] = [];
        for await (const chunk of message.stream()) {
          const bytes = chunk as Buffer;
          if (size < prefixLength) prefix.push(bytes.subarray(0, prefixLength - size));
          hash.update(bytes);
          size += bytes.length;
        }
        const subject = message.headers.get("subject") ?? "";
        seen.set(subject.trim(), {
          sha256: hash.digest("hex"),
          size,
          prepended: Buffer.concat(prefix).toString("utf8"),
        });
        await beforeStore.listener?.();
        return undefined;
      },
    },
  };
  return { plugin, seen, beforeStore };
}

function routeRecipients(route: string): Plugin {
  return {
    name: "conformance:routes",
    hooks: {
      rcptTo(_transaction, recipient) {
        return accept({ route: recipient.address.endsWith(`@${unownedDomain}`) ? unownedRoute : route });
      },
    },
  };
}

interface Harness {
  store: StoreUnderTest;
  server: TestServer;
  seen: Map<string, Witnessed>;
  /** Called when the store's queue hook is about to run (after the SMTP transfer and spooling). */
  beforeStore: { listener?: () => Promise<void> };
  close(): Promise<void>;
}

async function withHarness(context: ConformanceContext, body: (harness: Harness) => Promise<void>): Promise<void> {
  const store = await context.options.createStore();
  let server: TestServer | undefined;
  try {
    const observed = witness();
    server = await startTestServer({
      plugins: [routeRecipients(context.options.route), observed.plugin, store.plugin],
      config: {
        limits: { maxMessageSize: context.options.largeMessageBytes + 8 * 1024 * 1024, hookTimeoutMs: 240_000 },
      },
    });
    let stopped = false;
    const running = server;
    await body({
      store,
      server,
      seen: observed.seen,
      beforeStore: observed.beforeStore,
      async close() {
        if (stopped) return;
        stopped = true;
        await running.stop();
      },
    });
  } finally {
    await server?.stop().catch(() => undefined);
    await store.cleanup();
  }
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Asserts `stored` is exactly the prepended fields the store was handed + the original bytes. */
function assertByteExact(
  stored: Buffer | undefined,
  original: Buffer,
  witnessed: Witnessed | undefined,
  where: string,
) {
  assert.ok(stored, `${where}: the store holds no message`);
  assert.ok(witnessed, `${where}: the store was never handed the message`);
  assert.ok(
    witnessed.prepended.includes("X-Conformance: prepended by the conformance suite\r\n"),
    `${where}: prepended field missing from what the store was handed`,
  );
  const expected = Buffer.concat([Buffer.from(witnessed.prepended, "utf8"), original]);
  if (!stored.equals(expected)) {
    let at = 0;
    while (at < Math.min(stored.length, expected.length) && stored[at] === expected[at]) at++;
    assert.fail(
      `${where}: stored bytes differ from prepended fields + original message at offset ${at} ` +
        `(stored ${stored.length} bytes, expected ${expected.length}); ` +
        `stored ${JSON.stringify(stored.subarray(Math.max(0, at - 20), at + 20).toString("latin1"))}, ` +
        `expected ${JSON.stringify(expected.subarray(Math.max(0, at - 20), at + 20).toString("latin1"))}`,
    );
  }
  assert.equal(sha256(stored), witnessed.sha256, `${where}: stored bytes differ from what the store was handed`);
}

async function readOne(store: StoreUnderTest, recipient: string, subject: string): Promise<Buffer[]> {
  const all = await store.read(recipient);
  const marker = `Subject: ${subject}\r\n`;
  return all.filter((message) => message.includes(marker));
}

async function expectRefusal(promise: Promise<unknown>): Promise<{ code: number; response: string }> {
  try {
    await promise;
  } catch (error) {
    const failure = error as SendError;
    if (failure.responseCode) return { code: failure.responseCode, response: failure.response ?? "" };
    throw error;
  }
  assert.fail("the server accepted a message the store could not have stored");
}

/** A message whose bytes trip naive stores: dot-stuffing, "From " lines, 8-bit text, odd spacing. */
export function awkwardMessage(subject: string, to: string): Buffer {
  const body = [
    "From the start: a line mbox would escape.",
    "From me to you",
    ".",
    ".leading dot, and a line with only a dot above",
    "..two dots",
    "trailing spaces   ",
    "\ttab-indented",
    "UTF-8: Grüße, 日本語, emoji 📬",
    "",
    "",
    `${"x".repeat(990)}`,
    ".",
    "",
  ].join("\r\n");
  const head = [
    `From: Sender <sender@example.org>`,
    `To: ${to}`,
    `Subject: ${subject}`,
    "Date: Thu, 01 Jan 2026 00:00:00 +0000",
    `Message-ID: <${createHash("md5").update(subject).digest("hex")}@example.org>`,
    "X-Folded: first part",
    "\tsecond part",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
  ].join("\r\n");
  // Bytes that are not UTF-8 at all (Latin-1 "café", a stray 0xFF 0x80): 8BITMIME allows them
  // (NUL it does not, RFC 2045 §2.8), and a store that round-trips the message as text would
  // corrupt them.
  const notUtf8 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff, 0x80, 0x2e, 0x0d, 0x0a]);
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n${body}\r\n`, "utf8"), notUtf8]);
}

/** A message of `bytes` octets, generated as it is read so the client never holds it either. */
export function largeMessageStream(subject: string, to: string, bytes: number): { stream: Readable; sha256: string } {
  const head = Buffer.from(
    `From: <sender@example.org>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\n` +
      "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
  );
  const line = Buffer.from(`${"0123456789abcdefghijklmnopqrstuvwxyz".repeat(2).slice(0, 70)}\r\n`);
  const lines = Math.max(1, Math.floor((bytes - head.length) / line.length));
  const block = Buffer.concat(Array.from({ length: 1024 }, () => line));
  const hash = createHash("sha256").update(head);
  for (let remaining = lines; remaining > 0; remaining -= 1024) {
    hash.update(remaining >= 1024 ? block : block.subarray(0, remaining * line.length));
  }
  const digest = hash.digest("hex");
  const stream = Readable.from(
    (function* () {
      yield head;
      for (let remaining = lines; remaining > 0; remaining -= 1024) {
        // A fresh copy each time, like real network input, so nothing is shared between chunks.
        yield Buffer.from(remaining >= 1024 ? block : block.subarray(0, remaining * line.length));
      }
    })(),
    { objectMode: false },
  );
  return { stream, sha256: digest };
}

/** Sends a streamed message with nodemailer (the test kit's sendMail takes a Buffer); returns the reply. */
export async function sendStream(port: number, to: string | string[], stream: Readable): Promise<string> {
  const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({ envelope: { from: "sender@example.org", to }, raw: stream });
    return info.response;
  } finally {
    transport.close();
  }
}

function memoryInUse(): number {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/**
 * Memory in use after two full collections 25 ms apart: V8 frees the backing stores of dead
 * buffers on a background thread, so right after one collection dead buffers can still count.
 */
async function settledMemory(collect: () => void): Promise<number> {
  collect();
  await new Promise((resolve) => setTimeout(resolve, 25));
  collect();
  return memoryInUse();
}

/**
 * A full garbage collection, so samples count what is held, not garbage waiting to be collected.
 * Tests don't run with --expose-gc; the flag can be set at run time and `gc` read from a context.
 */
function garbageCollector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

export const storeConformanceChecks: readonly ConformanceCheck[] = [
  {
    title: "answers 250 only once the message is stored, and it stays stored after shutdown",
    timeoutMs: 60_000,
    async run(context) {
      await withHarness(context, async ({ store, server, seen, close }) => {
        const [alice] = context.options.recipients;
        const raw = buildMessage({ to: alice, subject: "durable-1" });
        const result = await server.send({ to: alice, raw });
        assert.match(result.response, /^250 /);
        // Read at once: a store that acknowledges before writing shows nothing yet.
        const stored = await readOne(store, alice, "durable-1");
        assert.equal(stored.length, 1, "the message is not readable when the 250 reply arrives");
        assertByteExact(stored[0], raw, seen.get("durable-1"), "durable-1");
        await close();
        const afterStop = await readOne(store, alice, "durable-1");
        assert.equal(afterStop.length, 1, "the message is gone after the server stopped");
      });
    },
  },
  {
    title: "stores prepended header fields + the original bytes, exactly",
    timeoutMs: 60_000,
    async run(context) {
      await withHarness(context, async ({ store, server, seen }) => {
        const [alice] = context.options.recipients;
        const raw = awkwardMessage("byte-exact-1", alice);
        await server.send({ to: alice, raw });
        const stored = await readOne(store, alice, "byte-exact-1");
        assert.equal(stored.length, 1);
        assertByteExact(stored[0], raw, seen.get("byte-exact-1"), "byte-exact-1");
        const text = stored[0]!.toString("latin1");
        assert.ok(text.startsWith("Received: ") || text.startsWith("X-Conformance: "), "prepended fields not on top");
      });
    },
  },
  {
    title: "delivers one message to several recipients, each once",
    timeoutMs: 60_000,
    async run(context) {
      await withHarness(context, async ({ store, server, seen }) => {
        const recipients = [...context.options.recipients];
        const raw = buildMessage({ to: recipients, subject: "several-1", text: "For three of you.\n" });
        const result = await server.send({ to: recipients, raw });
        assert.deepEqual([...result.accepted].sort(), [...recipients].sort());
        for (const recipient of recipients) {
          const stored = await readOne(store, recipient, "several-1");
          assert.equal(stored.length, 1, `${recipient} should have exactly one copy, has ${stored.length}`);
          assertByteExact(stored[0], raw, seen.get("several-1"), `several-1 for ${recipient}`);
        }
      });
    },
  },
  {
    title: "leaves routes it does not handle to other plugins",
    timeoutMs: 60_000,
    async run(context) {
      await withHarness(context, async ({ store, server }) => {
        const [alice] = context.options.recipients;
        const stranger = `someone@${unownedDomain}`;
        const raw = buildMessage({ to: stranger, subject: "unowned-1" });
        // Nobody stores that route, so core must answer 451 4.3.0 — the store may not claim it.
        const refusal = await expectRefusal(server.send({ to: stranger, raw }));
        assert.equal(refusal.code, 451, refusal.response);
        assert.match(refusal.response, /4\.3\.0/);
        assert.equal((await readOne(store, alice, "unowned-1")).length, 0);
      });
    },
  },
  {
    title: "a failure part-way through a write answers 4xx and leaves nothing visible",
    timeoutMs: 90_000,
    async run(context) {
      const { failure } = context.options;
      await withHarness(context, async ({ store, server, seen }) => {
        const recipients = [...context.options.recipients];
        // Large enough to be written in several pieces, so the failure can land in the middle.
        const text = "A line of the message that fails part-way through its write.\n".repeat(40_000);
        const raw = buildMessage({ to: recipients, subject: "failure-1", text });
        await store.breakStorage();
        const refusal = await expectRefusal(server.send({ to: recipients, raw }));
        assert.equal(refusal.code, failure.code, `expected ${failure.code}, got: ${refusal.response}`);
        const status = /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})/.exec(refusal.response)?.[1] ?? "";
        assert.match(status, failure.status, `unexpected enhanced status in: ${refusal.response}`);
        for (const recipient of recipients) {
          const visible = await readOne(store, recipient, "failure-1");
          assert.equal(visible.length, 0, `${recipient} sees a message whose write failed`);
        }
        await store.restore();
        // The sender retries; now it must be stored once, whole.
        seen.delete("failure-1");
        await server.send({ to: recipients, raw });
        for (const recipient of recipients) {
          const stored = await readOne(store, recipient, "failure-1");
          assert.equal(stored.length, 1, `${recipient} should have exactly one copy after the retry`);
          assertByteExact(stored[0], raw, seen.get("failure-1"), `failure-1 retry for ${recipient}`);
        }
      });
    },
  },
  {
    title: "stores concurrent deliveries, each once and intact",
    timeoutMs: 120_000,
    async run(context) {
      await withHarness(context, async ({ store, server, seen }) => {
        const recipients = context.options.recipients;
        const messages = Array.from({ length: context.options.concurrency }, (_, index) => {
          const to = recipients[index % recipients.length]!;
          const subject = `concurrent-${index}`;
          return { to, subject, raw: buildMessage({ to, subject, text: `Message ${index}\n`.repeat(200 + index) }) };
        });
        await Promise.all(messages.map(({ to, raw }) => server.send({ to, raw })));
        for (const { to, subject, raw } of messages) {
          const stored = await readOne(store, to, subject);
          assert.equal(stored.length, 1, `${subject} for ${to}: expected one copy, found ${stored.length}`);
          assertByteExact(stored[0], raw, seen.get(subject), subject);
        }
        let total = 0;
        for (const recipient of recipients) total += (await store.read(recipient)).length;
        assert.equal(total, messages.length, "the store holds more or fewer messages than were sent");
      });
    },
  },
  {
    title: "streams a large message through without holding it in memory",
    timeoutMs: 300_000,
    async run(context) {
      const { largeMessageBytes, largeMessageMemoryFactor } = context.options;
      await withHarness(context, async ({ store, server, seen, beforeStore }) => {
        const [alice] = context.options.recipients;
        const subject = "large-1";
        const large = largeMessageStream(subject, alice, largeMessageBytes);
        const allowed = largeMessageBytes * largeMessageMemoryFactor;
        const collect = garbageCollector();
        // Only the store's part is measured: from the moment its queue hook is called (the SMTP
        // transfer and the spool are done) until the reply. Sampling is cheap, full collections
        // are not: a sample over the limit is confirmed after them (at most every 200 ms), so
        // garbage waiting to be collected doesn't count as held.
        let baseline: number | undefined;
        let peak = 0;
        let confirming: Promise<void> | undefined;
        let lastConfirmed = 0;
        let sampler: NodeJS.Timeout | undefined;
        beforeStore.listener = async () => {
          baseline = await settledMemory(collect);
          peak = baseline;
          sampler = setInterval(() => {
            if (confirming || memoryInUse() - baseline! < allowed || Date.now() - lastConfirmed < 200) return;
            confirming = settledMemory(collect).then((held) => {
              peak = Math.max(peak, held);
              lastConfirmed = Date.now();
              confirming = undefined;
            });
          }, 10);
        };
        let response: string;
        try {
          response = await sendStream(server.port, alice, large.stream);
        } finally {
          clearInterval(sampler);
          beforeStore.listener = undefined;
        }
        assert.ok(baseline !== undefined, "the store was never handed the large message");
        await confirming;
        // What a store still holds once it answered counts too.
        peak = Math.max(peak, await settledMemory(collect));
        assert.match(response, /^250 /);
        const growth = peak - baseline;
        assert.ok(
          growth < allowed,
          `memory grew by ${(growth / 2 ** 20).toFixed(1)} MiB while a ${(largeMessageBytes / 2 ** 20).toFixed(0)} MiB ` +
            `message passed through (allowed ${(allowed / 2 ** 20).toFixed(1)} MiB): the store seems to buffer it`,
        );
        const witnessed = seen.get(subject);
        assert.ok(witnessed, "the store was never handed the large message");
        const stored = await store.read(alice);
        assert.equal(stored.length, 1, "expected the large message once");
        const copy = stored[0]!;
        assert.equal(copy.length, witnessed.size, "the stored large message has the wrong length");
        assert.equal(sha256(copy), witnessed.sha256, "the stored large message differs from what was sent");
        const prefix = Buffer.byteLength(witnessed.prepended);
        assert.equal(sha256(copy.subarray(prefix)), large.sha256, "the original bytes were altered");
      });
    },
  },
];
