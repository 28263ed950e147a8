// How a durable writer (store-maildir, outbound's filesystem queue) makes its file system calls.
//
// Node runs every asynchronous file system call on libuv's thread pool: a hand-off to a pool
// thread and back, ~26 futex calls per delivery of four calls, which on a busy 2-core machine cost
// far more than the calls themselves (tooling/bench/BENCHMARKS.md, "Where the time goes"). Most of
// those calls are metadata operations on a local file system — open a new file, rename, link,
// unlink, close — that take a few microseconds and never wait for the disk (they join the running
// journal transaction). Only the data write (O_DSYNC) and the directory fsync wait for the disk.
//
// So "inline" makes the metadata calls synchronously on the event loop and sends only the calls
// that wait for the disk to the pool: one hand-off per delivery plus a share of one fsync, instead
// of four plus one. "pool" keeps every call on the pool: for a network file system (NFS), where a
// rename is a round trip and must not stall the event loop.
import {
  closeSync,
  constants,
  fdatasync,
  fsync,
  close as closeAsync,
  link as linkAsync,
  linkSync,
  open as openAsync,
  openSync,
  rename as renameAsync,
  renameSync,
  unlink as unlinkAsync,
  unlinkSync,
  writev,
} from "node:fs";
import { promisify } from "node:util";

export type MetadataCalls = "inline" | "pool";

export interface FileSystemCalls {
  readonly metadata: MetadataCalls;
  open(path: string, flags: number, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  link(existing: string, target: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Always on the pool: with O_DSYNC it waits for the disk. */
  writev(fd: number, buffers: readonly Buffer[]): Promise<number>;
  /** Always on the pool. */
  fdatasync(fd: number): Promise<void>;
  /** Always on the pool. */
  fsync(fd: number): Promise<void>;
}

// Not promisify(writev): its custom promisified form resolves to { bytesWritten, buffers }.
function writevOnPool(fd: number, buffers: readonly Buffer[]): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, buffers as Buffer[], (error, bytesWritten) => (error ? reject(error) : resolve(bytesWritten)));
  });
}
const fdatasyncOnPool = promisify(fdatasync);
const fsyncOnPool = promisify(fsync);

const poolCalls: FileSystemCalls = {
  metadata: "pool",
  open: promisify(openAsync) as (path: string, flags: number, mode?: number) => Promise<number>,
  close: promisify(closeAsync),
  rename: promisify(renameAsync),
  link: promisify(linkAsync),
  unlink: promisify(unlinkAsync),
  writev: writevOnPool,
  fdatasync: fdatasyncOnPool,
  fsync: fsyncOnPool,
};

// async functions: a synchronous call's error becomes a rejection, as on the pool.
const inlineCalls: FileSystemCalls = {
  metadata: "inline",
  async open(path, flags, mode) {
    return openSync(path, flags, mode);
  },
  async close(fd) {
    closeSync(fd);
  },
  async rename(from, to) {
    renameSync(from, to);
  },
  async link(existing, target) {
    linkSync(existing, target);
  },
  async unlink(path) {
    unlinkSync(path);
  },
  writev: writevOnPool,
  fdatasync: fdatasyncOnPool,
  fsync: fsyncOnPool,
};

export function fileSystemCalls(metadata: MetadataCalls = "inline"): FileSystemCalls {
  return metadata === "inline" ? inlineCalls : poolCalls;
}

// Not every platform has O_DSYNC (Windows); there the data is written, then fdatasynced.
const O_DSYNC = (constants as { O_DSYNC?: number }).O_DSYNC;

/** Writes every byte of `buffers` (writev may write less than asked). */
export async function writeAll(calls: FileSystemCalls, fd: number, buffers: readonly Buffer[]): Promise<void> {
  let pending = buffers.filter((buffer) => buffer.length > 0);
  while (pending.length > 0) {
    let bytesWritten = await calls.writev(fd, pending);
    let index = 0;
    while (index < pending.length && bytesWritten >= pending[index]!.length) bytesWritten -= pending[index++]!.length;
    pending = pending.slice(index);
    if (pending.length > 0 && bytesWritten > 0) pending[0] = pending[0]!.subarray(bytesWritten);
  }
}

/**
 * Writes `buffers` into a file at `path` opened with `flags` (O_WRONLY | O_CREAT and O_EXCL or
 * O_TRUNC), and resolves once its data and size are on disk: one writev on a file opened O_DSYNC
 * (what write + fdatasync do, in one call). Its directory entry is not durable yet: the caller
 * renames or links it and fsyncs the directory.
 */
export async function writeFileDurably(
  calls: FileSystemCalls,
  path: string,
  buffers: readonly Buffer[],
  flags: number,
  mode = 0o600,
): Promise<void> {
  const fd = await calls.open(path, flags | (O_DSYNC ?? 0), mode);
  try {
    await writeAll(calls, fd, buffers);
    if (O_DSYNC === undefined) await calls.fdatasync(fd);
  } finally {
    await calls.close(fd);
  }
}
