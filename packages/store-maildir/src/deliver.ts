// One Maildir delivery of one message to several mailboxes, all or nothing: the message is written
// once into tmp/ of the first mailbox and made durable (its data, and the size that reaches it),
// hard-linked into new/ of every other mailbox, then renamed into new/ of the first; every new/
// is fsynced — one fsync shared by all deliveries that entered that directory meanwhile (group
// commit, core's DirectorySync) — and only then does the delivery resolve. On any failure every entry
// made so far and every tmp/ file is removed again, so a 4xx never leaves a copy a retry duplicates.
//
// File system calls for a message of up to 256 KB to one known mailbox: open (O_DSYNC), one
// writev, close and rename — the directory's open/fsync/close shared by the batch. (Before: three
// mkdir with three stat, open, write, fsync, close, link, open/fsync/close of new/, unlink.)
import { constants } from "node:fs";
import { copyFile, type FileHandle, link, open, rename, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { type DirectorySync, removeOrRetryLater } from "@postern/core";
import type { KnownMailboxes } from "./known-mailboxes.ts";
import { deliveredName, uniqueName } from "./unique-name.ts";

export interface Delivered {
  /** The file name in each new/ directory. */
  name: string;
  /** Bytes stored. */
  size: number;
  /** The paths in new/, one per mailbox. */
  paths: string[];
}

/** What deliveries of one store share: mailboxes known to exist, the per-directory fsync barrier. */
export interface DeliveryContext {
  readonly known: KnownMailboxes;
  readonly directories: DirectorySync;
}

const LF = 10;
const CR = 13;

/**
 * Messages up to this size are gathered (core holds them in memory already) and written with one
 * writev on a file opened O_DSYNC: the write returns once data and size are on disk, as a write
 * followed by fdatasync would, in one system call instead of two. Larger ones are streamed and
 * fdatasynced: O_DSYNC would make every chunk's write wait for the disk.
 */
const gatherBytes = 256 * 1024;

// Not every platform has O_DSYNC (Windows); there the small path writes and fdatasyncs too.
const { O_WRONLY, O_CREAT, O_EXCL } = constants;
const O_DSYNC = (constants as { O_DSYNC?: number }).O_DSYNC;
const createFlags = O_WRONLY | O_CREAT | O_EXCL;

/** Counts LFs not preceded by CR, carrying the last byte of the previous chunk. */
class LineEndCounter {
  bareLineFeeds = 0;
  #previous = -1;

  add(chunk: Buffer): void {
    // Core writes CRLF, but Dovecot's W= must be right even if a plugin prepended a bare LF.
    for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
      if ((lf === 0 ? this.#previous : chunk[lf - 1]) !== CR) this.bareLineFeeds++;
    }
    if (chunk.length > 0) this.#previous = chunk[chunk.length - 1]!;
  }
}

/** Writes every byte of `buffers` (writev may write less than asked). */
async function writeAll(handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers.filter((buffer) => buffer.length > 0);
  while (pending.length > 0) {
    let { bytesWritten } = await handle.writev(pending);
    let index = 0;
    while (index < pending.length && bytesWritten >= pending[index]!.length) bytesWritten -= pending[index++]!.length;
    pending = pending.slice(index);
    if (pending.length > 0 && bytesWritten > 0) pending[0] = pending[0]!.subarray(bytesWritten);
  }
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

/**
 * Runs a step that enters `mailbox` (open in tmp/, link or rename into new/). ENOENT means the
 * mailbox went away since it was made (someone removed it): make it again and retry once.
 */
async function inMailbox<T>(mailbox: string, known: KnownMailboxes, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    known.forget(mailbox);
    await known.ensure(mailbox);
    return step();
  }
}

/**
 * Streams `source` into a new file at `path` (in `mailbox`'s tmp/) and makes it durable; returns
 * its size and its size with CRLF line ends.
 */
async function writeDurably(
  mailbox: string,
  path: string,
  source: Readable,
  signal: AbortSignal,
  known: KnownMailboxes,
): Promise<{ size: number; crlfSize: number }> {
  const lineEnds = new LineEndCounter();
  const chunks = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let ended = false;
  try {
    const gathered: Buffer[] = [];
    let size = 0;
    while (size <= gatherBytes) {
      const next = await chunks.next();
      signal.throwIfAborted();
      if (next.done) {
        ended = true;
        break;
      }
      lineEnds.add(next.value);
      gathered.push(next.value);
      size += next.value.length;
    }

    const whole = ended && O_DSYNC !== undefined;
    const flags = whole ? createFlags | O_DSYNC! : createFlags;
    const handle = await inMailbox(mailbox, known, () => open(path, flags, 0o600));
    try {
      await writeAll(handle, gathered);
      if (!whole) {
        for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
          signal.throwIfAborted();
          lineEnds.add(next.value);
          await writeAll(handle, [next.value]);
          size += next.value.length;
        }
        ended = true;
        await handle.datasync();
      }
    } finally {
      await handle.close();
    }
    return { size, crlfSize: size + lineEnds.bareLineFeeds };
  } finally {
    // Left early (a failure, the deadline): end the source, so a spool file's stream closes now.
    if (!ended) await chunks.return?.();
  }
}

export async function deliver(
  mailboxes: readonly string[],
  source: Readable,
  signal: AbortSignal,
  context: DeliveryContext,
): Promise<Delivered> {
  const { known, directories } = context;
  const unique = uniqueName();
  const [first, ...others] = mailboxes as [string, ...string[]];
  const tmpFiles: string[] = [];
  const entered: string[] = [];
  try {
    for (const mailbox of mailboxes) await known.ensure(mailbox);
    const tmp = join(first, "tmp", unique);
    tmpFiles.push(tmp);
    const { size, crlfSize } = await writeDurably(first, tmp, source, signal, known);
    const name = deliveredName(unique, size, crlfSize);

    // The other mailboxes link the file while its tmp/ name still exists; the first mailbox
    // then takes that name by rename — one call instead of link + unlink, and the unique name
    // means no existing file can be replaced.
    for (const mailbox of others) {
      // Past the hook's deadline core has already answered 4xx: make no more entries.
      signal.throwIfAborted();
      const target = join(mailbox, "new", name);
      try {
        await inMailbox(mailbox, known, () => link(tmp, target));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
        // This mailbox is on another file system: a durable copy in its own tmp/, renamed in.
        const copy = join(mailbox, "tmp", unique);
        tmpFiles.push(copy);
        await copyFile(tmp, copy);
        const handle = await open(copy, "r");
        await handle.datasync().finally(() => handle.close());
        await rename(copy, target);
      }
      entered.push(target);
    }
    signal.throwIfAborted();
    const target = join(first, "new", name);
    await inMailbox(first, known, () => rename(tmp, target));
    entered.push(target);

    await Promise.all(entered.map((path) => directories.sync(dirname(path))));
    signal.throwIfAborted();
    return { name, size, paths: [target, ...entered.slice(0, -1)] };
  } catch (error) {
    // Undo: nothing may stay in new/ for a message the client will send again. (A reader such
    // as Dovecot could in principle move a just-entered file to cur/ before this runs; the
    // window is the few system calls between the rename and here.)
    for (const path of entered) await removeQuietly(path);
    await Promise.all(entered.map((path) => directories.sync(dirname(path)).catch(() => undefined)));
    // A tmp/ file the disk will not remove now (read-only) is removed once it lets go.
    for (const path of tmpFiles) await removeOrRetryLater(path);
    throw error;
  }
}
