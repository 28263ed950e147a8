// `postern queue` through the real CLI in a child process, on a filesystem spool described by a
// YAML config: with no server running (the command owns the spool) and while a process owns it
// (retry and delete are handed over through the spool's control folder).
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
// The store module directly: the package entry also loads pg, which vitest's "import" resolve
// condition breaks inside pg's own require() of pg-pool (see packages/outbound/vitest.config.ts).
import { FsQueueStore } from "../../../packages/outbound/src/queue/fs-store.ts";
import type { MessageEnvelope } from "../../../packages/outbound/src/queue/store.ts";
import { killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../../packages");

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

async function spoolConfig(): Promise<{ dir: string; spool: string }> {
  const dir = await makeTempDir("queue");
  await writeFile(
    join(dir, "postern.yaml"),
    `hostname: mx.example.org
listeners:
  - port: 2526
plugins:
  - package: "@postern/outbound"
    options:
      queue: { type: fs, dir: ./spool }
      worker: { enabled: false }
`,
  );
  await mkdir(join(dir, "node_modules/@postern"), { recursive: true });
  await symlink(join(packagesDir, "outbound"), join(dir, "node_modules/@postern/outbound"), "dir");
  return { dir, spool: join(dir, "spool") };
}

function envelope(id: string, from: string): MessageEnvelope {
  return {
    id,
    from,
    createdAt: Date.now() - 90_000,
    size: 1234,
    requireTls: false,
    smtpUtf8: false,
    bodyType: "7bit",
    kind: "relay",
  };
}

const body = Buffer.from(
  "From: <a@example.org>\r\nSubject: queued for you\r\nMessage-ID: <q1@example.org>\r\n\r\nHi\r\n",
);

async function fillSpool(spool: string): Promise<FsQueueStore> {
  const store = new FsQueueStore({ dir: spool });
  await store.open();
  await store.enqueue(
    envelope("MSGONE", "a@example.org"),
    [{ address: "x@far.test" }, { address: "y@far.test" }],
    body,
  );
  await store.enqueue(envelope("MSGTWO", ""), [{ address: "z@other.test" }], body);
  // One failed attempt for MSGONE's first recipient, retried in an hour.
  await store.claim({ worker: "w", limit: 1, leaseMs: 60_000 });
  await store.complete("w", "MSGONE", [
    {
      index: 0,
      result: "deferred",
      reply: { code: 451, status: "4.2.1", text: "Mailbox busy", remote: "mx.far.test [192.0.2.1]" },
      retryAfterMs: 3_600_000,
    },
    { index: 1, result: "delivered", reply: { code: 250, status: "2.0.0", text: "Ok" } },
  ]);
  return store;
}

describe("postern queue", () => {
  it("lists, shows, counts, retries and deletes when no server owns the spool", { timeout: 60_000 }, async () => {
    const { dir, spool } = await spoolConfig();
    await (await fillSpool(spool)).close();

    const list = await runCli(["queue", "list"], dir);
    expect(list.stderr).toBe("");
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^MSGONE +1\.2K +1m ago +<a@example\.org>$/m);
    expect(list.stdout).toMatch(
      /^ {4}x@far\.test {2}queued {2}next in (59|60)m {2}1 attempt {2}451 4\.2\.1 Mailbox busy \(mx\.far\.test \[192\.0\.2\.1\]\)$/m,
    );
    expect(list.stdout).toMatch(/^ {4}y@far\.test {2}delivered {2}1 attempt {2}250 2\.0\.0 Ok$/m);
    expect(list.stdout).toMatch(/^MSGTWO .* <>$/m);
    expect(list.stdout).toMatch(/^-- 2 messages, 2 recipients to deliver$/m);

    const show = await runCli(["queue", "show", "MSGONE"], dir);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain("  Subject: queued for you");
    expect(show.stdout).toContain("  Message-ID: <q1@example.org>");

    const stats = await runCli(["queue", "stats", "--json"], dir);
    expect(JSON.parse(stats.stdout)).toMatchObject({
      store: "fs",
      messages: 2,
      queued: 2,
      deferred: 1,
      domains: [
        { domain: "far.test", queued: 1 },
        { domain: "other.test", queued: 1 },
      ],
    });

    const retry = await runCli(["queue", "retry", "MSGONE"], dir);
    expect(retry.stdout).toBe("1 recipient due for delivery now\n");
    const store = new FsQueueStore({ dir: spool });
    await store.open();
    expect((await store.get("MSGONE"))!.recipients[0]!.nextAttemptAt).toBeLessThanOrEqual(Date.now());
    await store.close();

    const hold = await runCli(["queue", "hold", "MSGONE"], dir);
    expect(hold.stdout).toBe("1 recipient of MSGONE on hold\n");
    const held = await runCli(["queue", "list"], dir);
    expect(held.stdout).toMatch(/^ {4}x@far\.test {2}held {2}1 attempt/m);
    expect((await runCli(["queue", "stats"], dir)).stdout).toMatch(/^recipients +1 to deliver .*, 1 on hold$/m);
    expect((await runCli(["queue", "retry", "--all"], dir)).stdout).toBe("1 recipient due for delivery now\n");
    const release = await runCli(["queue", "release", "MSGONE"], dir);
    expect(release.stdout).toBe("1 recipient of MSGONE released, due now\n");
    expect((await runCli(["queue", "hold", "NOSUCH"], dir)).stderr).toBe(
      "postern queue: no message NOSUCH in the queue\n",
    );

    const removed = await runCli(["queue", "delete", "MSGTWO"], dir);
    expect(removed.stdout).toBe("deleted MSGTWO\n");
    const missing = await runCli(["queue", "show", "MSGTWO"], dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("postern queue: no message MSGTWO in the queue\n");
    const usage = await runCli(["queue", "retry"], dir);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/needs a queue ID or --all/);
  });

  it("hands retry and delete to the process that owns the spool", { timeout: 60_000 }, async () => {
    const { dir, spool } = await spoolConfig();
    const owner = await fillSpool(spool); // this test process holds the spool lock
    const removed = await runCli(["queue", "delete", "MSGTWO"], dir);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(/^deleted MSGTWO \(handed to the server that owns the spool/);
    expect(await owner.get("MSGTWO")).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 600));
    await owner.claim({ worker: "w", limit: 10, leaseMs: 1000 }); // the owner applies requests as it works
    expect(await owner.get("MSGTWO")).toBeUndefined();
    await owner.close();
  });
});
