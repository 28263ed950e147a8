// Failures must answer 451 4.3.0 and leave nothing in any new/ and nothing in tmp/. Tests run as
// root, which ignores permission bits, so the failures here are ones root cannot bypass: a file
// where a directory should be, a path too long to link, a full or read-only file system.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmdirSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PosternError } from "@postern/core";
import {
  buildMessage,
  bulkyText,
  claimRecipients,
  type SendError,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import maildir from "./index.ts";

let base: string;
let server: TestServer | undefined;
const mounts: string[] = [];

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "postern-maildir-fail-"));
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});
afterAll(async () => {
  for (const mount of mounts.reverse()) execFileSync("umount", [mount]);
  await rm(base, { recursive: true, force: true });
});

async function files(dir: string): Promise<string[]> {
  return readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [];
    throw error;
  });
}

async function sendExpectingDeferral(test: TestServer, to: string[], raw = buildMessage()): Promise<void> {
  const error = await test.send({ to, raw }).then(
    () => undefined,
    (caught: SendError) => caught,
  );
  expect(error?.responseCode, String(error?.response)).toBe(451);
  expect(error?.response).toMatch(/^451 4\.3\.0 /);
}

describe("setup", () => {
  it("fails fast, naming the root, when the root cannot be a directory", async () => {
    const file = join(base, "a-file");
    await writeFile(file, "not a directory\n");
    for (const root of [file, join(file, "maildir")]) {
      const failure = await startTestServer({ plugins: [claimRecipients(), maildir({ root })] }).then(
        (started) => {
          server = started;
          return undefined;
        },
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(PosternError);
      expect((failure as PosternError).code).toBe("POSTERN_SETUP_FAILED");
      expect((failure as Error).message).toContain(`cannot use the Maildir root ${root}`);
    }
  });
});

describe("delivery failures", () => {
  it("answers 451 4.3.0 when a domain directory is a regular file (ENOTDIR)", async () => {
    const root = join(base, "enotdir");
    server = await startTestServer({ plugins: [claimRecipients(), maildir({ root })] });
    await writeFile(join(root, "example.com"), "in the way\n");
    await sendExpectingDeferral(server, ["alice@example.com"]);
    expect(await files(root)).toEqual(["example.com"]);
    expect((await stat(join(root, "example.com"))).isFile()).toBe(true);
  });

  it("undoes the links already made when a later mailbox fails", async () => {
    // A root so deep that bob's mailbox can still be created (under PATH_MAX, 4096 bytes) but a
    // file name inside it cannot (ENAMETOOLONG on link), while alice's shorter paths work. So
    // alice's new/ gets its link first, then bob's fails and alice's must be removed again.
    let root = join(base, "deep");
    while (root.length < 3850) root = join(root, "d".repeat(Math.min(200, 3850 - root.length)));
    const bob = "b".repeat(220);
    const bobMailbox = join(root, "example.com", bob);
    expect(bobMailbox.length + "/new".length).toBeLessThan(4096);
    expect(bobMailbox.length + "/new/".length + 70).toBeGreaterThan(4096);

    server = await startTestServer({ plugins: [claimRecipients(), maildir({ root })] });
    await sendExpectingDeferral(server, ["alice@example.com", `${bob}@example.com`]);
    const alice = join(root, "example.com", "alice");
    expect(await files(join(alice, "tmp"))).toEqual([]);
    expect(await files(join(alice, "new"))).toEqual([]); // was linked, then removed
    expect(await files(join(bobMailbox, "new"))).toEqual([]);
    expect(await files(join(bobMailbox, "tmp"))).toEqual([]);
    // The log says why.
    expect(server.logs.some((line) => line.msg.includes("ENAMETOOLONG"))).toBe(true);
  });
});

/** Mounting a tmpfs needs CAP_SYS_ADMIN: true on this machine (root), maybe not in every CI. */
const canMount = (() => {
  const probe = mkdtempSync(join(tmpdir(), "postern-mount-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], { stdio: "ignore" });
    execFileSync("umount", [probe], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    rmdirSync(probe);
  }
})();

function mountTmpfs(dir: string, options: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
  mounts.push(dir);
}

describe.skipIf(!canMount)("full and read-only file systems (tmpfs)", () => {
  it("answers 451 4.3.0 on ENOSPC and leaves no partial file in tmp/", async () => {
    const mountPoint = join(base, "small");
    mountTmpfs(mountPoint, "size=100k,mode=0700");
    const root = join(mountPoint, "maildir");
    server = await startTestServer({ plugins: [claimRecipients(), maildir({ root })] });
    await sendExpectingDeferral(server, ["alice@example.com"], buildMessage({ text: bulkyText(400 * 1024) }));
    expect(await files(join(root, "example.com", "alice", "tmp"))).toEqual([]);
    expect(await files(join(root, "example.com", "alice", "new"))).toEqual([]);
    expect(server.logs.some((line) => line.msg.includes("ENOSPC"))).toBe(true);
    // A message that fits is still stored afterwards.
    const result = await server.send({ to: "alice@example.com", raw: buildMessage() });
    expect(result.response).toMatch(/^250 /);
    expect(await files(join(root, "example.com", "alice", "new"))).toHaveLength(1);
  });

  it("copies into a mailbox on another file system, and undoes everything when that one is read-only", async () => {
    const root = join(base, "cross");
    await mkdir(root, { recursive: true });
    const bob = join(root, "example.com", "bob");
    mountTmpfs(bob, "size=1m,mode=0700");
    server = await startTestServer({ plugins: [claimRecipients(), maildir({ root })] });

    // Hard links cannot cross file systems: bob gets a copy (EXDEV fallback), alice the original.
    await server.send({ to: ["alice@example.com", "bob@example.com"], raw: buildMessage() });
    const alice = join(root, "example.com", "alice");
    const [aliceFile] = await files(join(alice, "new"));
    const [bobFile] = await files(join(bob, "new"));
    expect(bobFile).toBe(aliceFile);
    expect((await stat(join(bob, "new", bobFile!))).size).toBe((await stat(join(alice, "new", aliceFile!))).size);
    expect(await files(join(alice, "tmp"))).toEqual([]);
    expect(await files(join(bob, "tmp"))).toEqual([]);

    execFileSync("mount", ["-o", "remount,ro", bob]);
    await sendExpectingDeferral(server, ["alice@example.com", "bob@example.com"]);
    expect(await files(join(alice, "new"))).toEqual([aliceFile]); // the second message's link was undone
    expect(await files(join(alice, "tmp"))).toEqual([]);
    expect(await files(join(bob, "new"))).toEqual([bobFile]);
    expect(server.logs.some((line) => line.msg.includes("EROFS"))).toBe(true);
  });
});
