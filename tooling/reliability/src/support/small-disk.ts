// A small tmpfs the test mounts (it runs as root) so the disk can really fill up (ENOSPC) and
// really turn read-only (EROFS) under a running server: spool, Maildir and queue live on it.
// Permissions are no substitute here: root writes through a chmod 0555 directory.
import { execFileSync } from "node:child_process";
import { mkdtemp, open, rm, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SmallDisk {
  readonly dir: string;
  /** Writes a filler file until the disk refuses (ENOSPC); `free()` removes it. */
  fill(): Promise<void>;
  free(): Promise<void>;
  readOnly(): void;
  readWrite(): void;
  unmount(): Promise<void>;
}

export const canMount = (): boolean => process.getuid?.() === 0;

export async function mountSmallDisk(sizeMb: number): Promise<SmallDisk> {
  const dir = await mkdtemp(join(tmpdir(), "postern-reliability-disk-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMb}m,mode=0755`, "tmpfs", dir]);
  const filler = join(dir, "filler");
  return {
    dir,
    async fill() {
      const handle = await open(filler, "w");
      const block = Buffer.alloc(64 * 1024, 0x66);
      try {
        for (;;) await handle.write(block);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
      } finally {
        await handle.close();
      }
    },
    async free() {
      await rm(filler, { force: true });
    },
    readOnly() {
      // The kernel refuses (EBUSY) while a file there is open for writing — under load one
      // usually is, for a moment: try again for up to 5 s, 20 ms apart.
      for (let attempt = 1; ; attempt++) {
        try {
          execFileSync("mount", ["-o", "remount,ro", dir], { stdio: "pipe" });
          return;
        } catch (error) {
          const busy = String((error as { stderr?: Buffer }).stderr ?? "").includes("busy");
          if (!busy || attempt >= 250) throw error;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    },
    readWrite() {
      execFileSync("mount", ["-o", "remount,rw", dir]);
    },
    async unmount() {
      execFileSync("umount", ["-l", dir]);
      await rmdir(dir).catch(() => undefined);
    },
  };
}
