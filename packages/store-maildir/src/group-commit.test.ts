// The batched path: many deliveries at once into the same new/ directories share its fsyncs, and
// still every message is there, once, byte for byte, and nothing is acknowledged before the fsync
// that covers it has ended.
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { DirectorySync, syncDirectory } from "@postern/core";
import { buildMessage, bulkyText, claimRecipients, startTestServer, type TestServer } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { deliver } from "./deliver.ts";
import maildir from "./index.ts";
import { KnownMailboxes } from "./known-mailboxes.ts";

let base: string;
let server: TestServer | undefined;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "postern-maildir-group-"));
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** Every file in new/ of `mailbox`, by the Subject it carries. */
async function storedBySubject(mailbox: string): Promise<Map<string, Buffer>> {
  const stored = new Map<string, Buffer>();
  for (const name of await readdir(join(mailbox, "new"))) {
    const bytes = await readFile(join(mailbox, "new", name));
    const subject = /^Subject: (.*)\r$/m.exec(bytes.toString("latin1"))?.[1];
    expect(subject, name).toBeDefined();
    expect(stored.has(subject!), `${subject} stored twice`).toBe(false);
    stored.set(subject!, bytes);
    expect(name).toMatch(new RegExp(`,S=${bytes.length},W=${bytes.length}$`));
  }
  return stored;
}

describe("group commit", () => {
  it("resolves every delivery only after an fsync that started after its rename; 50 deliveries, 2 fsyncs", async () => {
    const root = join(base, "direct");
    const mailbox = join(root, "example.com", "alice");
    const count = 50;
    const log: string[] = [];
    let callers = 0;
    let allCalled: () => void = () => undefined;
    const everyoneAsked = new Promise<void>((resolve) => {
      allCalled = resolve;
    });
    // The first fsync is held until every delivery has asked for one, so all but the first are
    // certainly in the batch after it: the batching is forced, not left to timing.
    const directories = new (class extends DirectorySync {
      override sync(directory: string): Promise<void> {
        if (++callers === count) allCalled();
        return super.sync(directory);
      }
    })(async (directory) => {
      const number = log.filter((entry) => entry.startsWith("fsync start")).length + 1;
      log.push(`fsync start ${number}`);
      if (number === 1) await everyoneAsked;
      await syncDirectory(directory);
      log.push(`fsync end ${number}`);
    });
    const context = { known: new KnownMailboxes(), directories };
    const messages = Array.from({ length: count }, (_, n) =>
      buildMessage({ to: "alice@example.com", subject: `direct ${n}`, text: bulkyText(1000 + n * 37) }),
    );
    await Promise.all(
      messages.map(async (raw, n) => {
        const delivered = await deliver([mailbox], Readable.from([raw]), new AbortController().signal, context);
        log.push(`resolved ${n}`);
        return delivered;
      }),
    );

    expect(directories.fsyncs).toBe(2);
    const firstEnd = log.indexOf("fsync end 1");
    const secondEnd = log.indexOf("fsync end 2");
    const resolvedAfter = (n: number) => log.indexOf(`resolved ${n}`);
    // One delivery rode on fsync 1; the other 49 on fsync 2, and none resolved before it ended.
    const early = messages.map((_, n) => n).filter((n) => resolvedAfter(n) < secondEnd);
    expect(early).toHaveLength(1);
    expect(resolvedAfter(early[0]!)).toBeGreaterThan(firstEnd);

    const stored = await storedBySubject(mailbox);
    expect(stored.size).toBe(count);
    for (const [n, raw] of messages.entries()) expect(stored.get(`direct ${n}`)?.equals(raw), `direct ${n}`).toBe(true);
    expect(await readdir(join(mailbox, "tmp"))).toEqual([]);
  });

  it("many concurrent SMTP deliveries to shared mailboxes: each message once, byte-exact, in every mailbox", async () => {
    const root = join(base, "smtp");
    server = await startTestServer({ plugins: [claimRecipients(), maildir({ root })], hostname: "localhost" });
    const alice = join(root, "example.com", "alice");
    const bob = join(root, "example.com", "bob");
    const count = 120;
    // Every third message also goes to bob (one file, linked into both new/ directories); a few
    // are large enough to be streamed and fdatasynced rather than written at once.
    const messages = Array.from({ length: count }, (_, n) => ({
      to: n % 3 === 0 ? ["alice@example.com", "bob@example.com"] : ["alice@example.com"],
      raw: buildMessage({ subject: `concurrent ${n}`, text: bulkyText(n % 40 === 0 ? 400 * 1024 : 2000 + n * 11) }),
    }));
    let next = 0;
    const client = async () => {
      while (next < count) {
        const message = messages[next++]!;
        const result = await server!.send(message);
        expect(result.response).toMatch(/^250 /);
      }
    };
    await Promise.all(Array.from({ length: 40 }, client));

    const inAlice = await storedBySubject(alice);
    const inBob = await storedBySubject(bob);
    expect(inAlice.size).toBe(count);
    expect(inBob.size).toBe(count / 3);
    for (const [n, { raw }] of messages.entries()) {
      for (const [owner, stored] of [
        ["alice", inAlice],
        ["bob", inBob],
      ] as const) {
        const copy = stored.get(`concurrent ${n}`);
        if (owner === "bob" && n % 3 !== 0) {
          expect(copy).toBeUndefined();
          continue;
        }
        // What the store wrote: core's Received: field on top, then the message as sent.
        expect(copy?.subarray(copy.length - raw.length).equals(raw), `${owner}: concurrent ${n}`).toBe(true);
        expect(copy!.toString("latin1")).toMatch(/^Received: from client\.test /);
      }
    }
    // Shared recipients share the inode; nothing is left in tmp/.
    const name = (await readdir(join(bob, "new")))[0]!;
    expect((await stat(join(bob, "new", name))).nlink).toBe(2);
    expect(await readdir(join(alice, "tmp"))).toEqual([]);
    expect(await readdir(join(bob, "tmp"))).toEqual([]);
  });
});
