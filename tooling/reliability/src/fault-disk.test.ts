// Fault injection under load: the disk that holds core's spool, the Maildir and the outbound
// filesystem queue fills up (ENOSPC on a small tmpfs this test mounts) and then turns read-only
// (EROFS), while `postern start` takes mail for a local mailbox and for relay. Clients must get
// 4xx, never 250 for a message that did not reach the disk, and mail must flow again once space
// is freed or the disk is writable again. Needs root (mount); CI runs as root.
//   pnpm --filter @postern/reliability test:faults
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FsQueueStore } from "@postern/outbound";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acknowledgedMore, type FaultLoad, refusedMore, startFaultLoad } from "./support/fault-load.ts";
import { type FaultServer, startFaultServer } from "./support/fault-server.ts";
import { replySummary } from "./support/reply-summary.ts";
import { mountSmallDisk, type SmallDisk } from "./support/small-disk.ts";
import { checkStored, messageIdOf, readMaildir, readQueue } from "./support/stored-mail.ts";

const ackEarlyStore = fileURLToPath(new URL("./support/ack-early-store.ts", import.meta.url));

const local = "user@fault.test";
const remote = "someone@remote.test";
let disk: SmallDisk;
let server: FaultServer;
let load: FaultLoad;

beforeAll(async () => {
  disk = await mountSmallDisk(24);
  server = await startFaultServer("disk", () => ({
    spoolDir: join(disk.dir, "spool"),
    plugins: [
      { package: "@postern/recipients", options: { domains: ["fault.test"], relay: { networks: ["127.0.0.0/8"] } } },
      { package: "@postern/store-maildir", options: { root: join(disk.dir, "maildir") } },
      {
        package: "@postern/outbound",
        options: { queue: { type: "fs", dir: join(disk.dir, "queue") }, worker: { enabled: false } },
      },
    ],
  }));
  // Every fifth message is 300 KB: past core's memory threshold, it goes through the spool file.
  load = startFaultLoad({
    port: server.port,
    sessions: 4,
    recipients: [local, remote],
    tag: "disk",
    size: (sequence) => (sequence % 5 === 4 ? 300_000 : 2000 + ((sequence * 7919) % 6000)),
  });
  await acknowledgedMore(load, 20, 30_000);
});

afterAll(async () => {
  await load?.stop();
  await server?.cleanup();
  await disk?.unmount();
});

describe("disk faults under load (spool, Maildir and queue on one small tmpfs)", () => {
  it("a full disk: 4xx, then mail flows again once space is freed", async () => {
    await disk.fill();
    await refusedMore(load, 6, 30_000);
    await disk.free();
    await acknowledgedMore(load, 20, 30_000);
  });

  it("a read-only disk: 4xx, then mail flows again once it is writable", async () => {
    disk.readOnly();
    try {
      await refusedMore(load, 6, 30_000);
    } finally {
      disk.readWrite();
    }
    await acknowledgedMore(load, 20, 30_000);
  });

  it("stored every acknowledged message exactly as sent, nothing half, and told no client 5xx", async () => {
    await load.stop();
    const { exit } = await server.stop();
    expect(exit, server.process.output()).toBe(0);
    console.log(`disk faults: ${replySummary(load)}`);
    expect(load.hangs).toEqual([]);
    expect(load.permanent).toEqual([]);
    const stored = [
      ...(await readMaildir(join(disk.dir, "maildir"), local)),
      ...(await readQueue(new FsQueueStore({ dir: join(disk.dir, "queue") }))),
    ];
    const check = checkStored(load, stored, [local, remote]);
    expect(check.problems).toEqual([]);
    // Nothing half-written is left where it takes space or could be taken for a message.
    for (const folder of ["spool", "maildir/fault.test/user/tmp", "queue/tmp"]) {
      expect(await readdir(join(disk.dir, folder)), folder).toEqual([]);
    }
  });
});

describe("disk faults: negative control", () => {
  it("catches a store that answers 250 before it has written (and loses the message on a full disk)", async () => {
    const early = await startFaultServer("disk-early", () => ({
      plugins: [
        { package: "@postern/recipients", options: { domains: ["fault.test"] } },
        { package: ackEarlyStore, options: { dir: disk.dir } },
      ],
    }));
    const brokenLoad = startFaultLoad({ port: early.port, sessions: 2, recipients: [local], tag: "early" });
    try {
      await acknowledgedMore(brokenLoad, 5, 30_000);
      await disk.fill();
      await acknowledgedMore(brokenLoad, 5, 30_000);
      await brokenLoad.stop();
      await new Promise((resolve) => setTimeout(resolve, 700)); // its late writes, failing
      await disk.free();
      const stored = await Promise.all(
        (await readdir(disk.dir))
          .filter((name) => name.endsWith(".eml"))
          .map(async (name) => {
            const bytes = await readFile(join(disk.dir, name));
            return { where: name, messageId: messageIdOf(bytes), bytes };
          }),
      );
      const { problems } = checkStored(brokenLoad, stored, [local]);
      expect(problems.some((problem) => problem.startsWith("acknowledged but not stored"))).toBe(true);
    } finally {
      await brokenLoad.stop();
      await disk.free();
      await early.cleanup();
    }
  });
});
