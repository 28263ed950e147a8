// The storage conformance suite (from @postern/testing) against @postern/store-maildir. The root
// sits on a small tmpfs of its own when this machine allows mounting (root with CAP_SYS_ADMIN), so
// a failure part-way is a real one: the file system fills up in the middle of the message
// (ENOSPC). Without mounting, a file where the domain directory should be makes the write fail
// before any byte is written instead.
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeStoreConformance } from "@postern/testing/vitest";
import maildir from "./index.ts";

function tryMount(dir: string): boolean {
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", dir], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Delivery time from a Maildir name, <seconds>.M<microseconds>…, for oldest-first order. */
function deliveredAt(name: string): number {
  const match = /^(\d+)\.M(\d+)/.exec(name);
  return match ? Number(match[1]) * 1e6 + Number(match[2]) : 0;
}

describeStoreConformance("@postern/store-maildir", {
  async createStore() {
    const base = await mkdtemp(join(tmpdir(), "postern-maildir-conformance-"));
    const mountPoint = join(base, "fs");
    await mkdir(mountPoint);
    const mounted = tryMount(mountPoint);
    const root = join(mountPoint, "maildir");
    const filler = join(mountPoint, "filler");
    return {
      plugin: maildir({ root }),
      async read(recipient) {
        const [user, domain] = recipient.toLowerCase().split("@") as [string, string];
        const files: string[] = [];
        for (const sub of ["new", "cur"]) {
          const dir = join(root, domain, user, sub);
          for (const name of await readdir(dir).catch(() => [] as string[])) files.push(join(dir, name));
        }
        files.sort(
          (a, b) => deliveredAt(a.slice(a.lastIndexOf("/") + 1)) - deliveredAt(b.slice(b.lastIndexOf("/") + 1)),
        );
        return Promise.all(files.map((file) => readFile(file)));
      },
      async breakStorage() {
        if (mounted) {
          // Leave 512 KiB: the message the check sends is about 2.5 MB, so the write fails midway.
          const { bavail, bsize } = await statfs(mountPoint);
          await writeFile(filler, Buffer.alloc(Math.max(0, bavail * bsize - 512 * 1024)));
        } else {
          await mkdir(root, { recursive: true });
          await writeFile(join(root, "example.test"), "in the way\n");
        }
      },
      async restore() {
        await rm(mounted ? filler : join(root, "example.test"), { force: true });
      },
      async cleanup() {
        if (mounted) execFileSync("umount", [mountPoint]);
        await rm(base, { recursive: true, force: true });
      },
    };
  },
});
