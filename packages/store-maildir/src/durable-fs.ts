// File system steps that must survive a crash once they return: directories are fsynced after
// entries are added to them, because a rename or link is only durable when its directory is.
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { syncDirectory } from "@postern/core";

/**
 * Creates `mailbox` with cur/, new/ and tmp/ (mode 0700) where missing. When anything was
 * created, the parents of every new directory are fsynced so the mailbox itself is durable.
 */
export async function ensureMaildir(mailbox: string): Promise<void> {
  const parentsToSync = new Set<string>();
  for (const sub of ["cur", "new", "tmp"]) {
    const leaf = join(mailbox, sub);
    // mkdir returns the topmost directory it created; everything from there down to leaf is new.
    const topmost = await mkdir(leaf, { recursive: true, mode: 0o700 });
    if (topmost === undefined) continue;
    for (let dir = leaf; ; dir = dirname(dir)) {
      parentsToSync.add(dirname(dir));
      if (dir === topmost || dir === dirname(dir)) break;
    }
  }
  // Deepest first, so each entry is durable before the entry that leads to it.
  for (const dir of [...parentsToSync].sort((a, b) => b.length - a.length)) await syncDirectory(dir);
}
