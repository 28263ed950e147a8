// Where a directory really is: the nearest folder of a path that exists, and whether it lies on a
// kernel pseudo file system (/proc, /sys, cgroups …). Files there are not files — a Maildir under
// /proc made `postern start` spin at 74% CPU in mkdir, never listening — so such a root is refused
// before any plugin touches it.
import { stat, statfs } from "node:fs/promises";
import { dirname, resolve } from "node:path";

/** statfs(2) magic numbers of Linux pseudo file systems (linux/magic.h). */
const pseudoFileSystems = new Map<number, string>([
  [0x9fa0, "proc"],
  [0x62656572, "sysfs"],
  [0x27e0eb, "cgroup"],
  [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"],
  [0x74726163, "tracefs"],
  [0x73636673, "securityfs"],
  [0x1cd1, "devpts"],
  [0xcafe4a11, "bpf"],
]);

/** The path itself when it exists, else its nearest existing parent. */
export async function nearestExisting(path: string): Promise<string> {
  let current = resolve(path);
  for (;;) {
    try {
      await stat(current);
      return current;
    } catch {
      const parent = dirname(current);
      if (parent === current) return current;
      current = parent;
    }
  }
}

/** "proc" when `path` (or the folder it would be created in) is on /proc, and so on; undefined for a real file system. */
export async function pseudoFileSystemOf(path: string): Promise<string | undefined> {
  const existing = await nearestExisting(path);
  if (/^\/(proc|sys)(\/|$)/.test(existing)) return existing.split("/")[1];
  try {
    return pseudoFileSystems.get(Number((await statfs(existing)).type));
  } catch {
    return undefined;
  }
}
