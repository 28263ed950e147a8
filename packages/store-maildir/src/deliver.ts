// One Maildir delivery of one message to several mailboxes, all or nothing: the message is
// streamed once into tmp/ of the first mailbox and fsynced, then hard-linked into new/ of every
// mailbox (each new/ fsynced), then the tmp/ name is removed. On any failure every link made so
// far and every tmp/ file is removed again, so a 4xx never leaves a copy a later retry duplicates.
import { copyFile, link, open, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { ensureMaildir, syncDirectory } from "./durable-fs.ts";
import { deliveredName, uniqueName } from "./unique-name.ts";

export interface Delivered {
  /** The file name in each new/ directory. */
  name: string;
  /** Bytes stored. */
  size: number;
  /** The paths in new/, one per mailbox. */
  paths: string[];
}

const LF = 10;
const CR = 13;

/** Streams `source` into a new file at `path` and fsyncs it; returns its size and CRLF size. */
async function writeDurably(
  path: string,
  source: Readable,
  signal: AbortSignal,
): Promise<{ size: number; crlfSize: number }> {
  const handle = await open(path, "wx", 0o600);
  try {
    let size = 0;
    let bareLineFeeds = 0;
    let previous = -1;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      signal.throwIfAborted();
      // Core writes CRLF, but Dovecot's W= must be right even if a plugin prepended a bare LF.
      for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
        if ((lf === 0 ? previous : chunk[lf - 1]) !== CR) bareLineFeeds++;
      }
      if (chunk.length > 0) previous = chunk[chunk.length - 1]!;
      let offset = 0;
      while (offset < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
        offset += bytesWritten;
      }
      size += chunk.length;
    }
    await handle.sync();
    return { size, crlfSize: size + bareLineFeeds };
  } finally {
    await handle.close();
  }
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

export async function deliver(mailboxes: readonly string[], source: Readable, signal: AbortSignal): Promise<Delivered> {
  const unique = uniqueName();
  const tmpFiles: string[] = [];
  const linked: string[] = [];
  try {
    for (const mailbox of mailboxes) await ensureMaildir(mailbox);
    const first = join(mailboxes[0]!, "tmp", unique);
    tmpFiles.push(first);
    const { size, crlfSize } = await writeDurably(first, source, signal);
    const name = deliveredName(unique, size, crlfSize);

    for (const mailbox of mailboxes) {
      // Past the hook's deadline core has already answered 4xx: link nothing more.
      signal.throwIfAborted();
      const target = join(mailbox, "new", name);
      try {
        await link(first, target);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
        // This mailbox is on another file system: copy into its own tmp/, then link there.
        const copy = join(mailbox, "tmp", unique);
        tmpFiles.push(copy);
        await copyFile(first, copy);
        const handle = await open(copy, "r");
        await handle.sync().finally(() => handle.close());
        await link(copy, target);
      }
      linked.push(target);
    }
    for (const target of linked) await syncDirectory(dirname(target));
    signal.throwIfAborted();
    for (const tmp of tmpFiles) await removeQuietly(tmp);
    return { name, size, paths: linked };
  } catch (error) {
    // Undo: nothing may stay in new/ for a message the client will send again. (A reader such
    // as Dovecot could in principle move a just-linked file to cur/ before this runs; the
    // window is the few system calls between link and here.)
    for (const target of linked) await removeQuietly(target);
    for (const target of linked) await syncDirectory(dirname(target)).catch(() => undefined);
    for (const tmp of tmpFiles) await removeQuietly(tmp);
    throw error;
  }
}
