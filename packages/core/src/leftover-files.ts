// Files that must go but that the disk would not let go of (read-only, failing): a spool file
// after its transaction, a store's half-written temporary file. Their removal runs after the reply
// is decided, so it must not throw into it; what the disk refuses is retried every few seconds and
// once more when the server stops. One set per process: the paths are absolute.
import { rm } from "node:fs/promises";

const leftovers = new Set<string>();
const retryMs = 5000;
let retryTimer: NodeJS.Timeout | undefined;

/** Removes `path` (gone already is fine); never throws. Answers whether it is gone now. */
export async function removeOrRetryLater(path: string): Promise<boolean> {
  try {
    await rm(path, { force: true });
    leftovers.delete(path);
    return true;
  } catch {
    leftovers.add(path);
    if (!retryTimer) {
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        void removeLeftoverFiles();
      }, retryMs).unref();
    }
    return false;
  }
}

/** Tries again to remove every file that could not be removed; answers those still left. */
export async function removeLeftoverFiles(): Promise<string[]> {
  for (const path of [...leftovers]) await removeOrRetryLater(path);
  return [...leftovers];
}
