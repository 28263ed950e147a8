// Where message bytes are kept while a transaction lasts: in memory up to a threshold, in a
// private file in the spool directory above it (so a 50 MB message never sits in memory). Used for
// the DATA stream (spool.ts) and for bodies that data hooks put in place of the received one.
import { randomBytes } from "node:crypto";
import { type FileHandle, mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { removeOrRetryLater } from "./leftover-files.ts";

export type SpooledBody = { kind: "memory"; chunks: readonly Buffer[] } | { kind: "file"; path: string };

export interface SpoolStorage {
  readonly memoryThreshold: number;
  readonly spoolDir: string;
}

/** Collects bytes in memory, moving to a spool file once they pass the threshold. */
export class SpoolWriter {
  readonly #storage: SpoolStorage;
  readonly #memory: Buffer[] = [];
  #file: FileHandle | undefined;
  #path: string | undefined;
  size = 0;

  constructor(storage: SpoolStorage) {
    this.#storage = storage;
  }

  /**
   * Keeps `data`. Synchronous (undefined) while the bytes stay in memory, the common case; a
   * promise once they go to the file, which the caller must await before the next write.
   */
  write(data: Buffer): Promise<void> | undefined {
    if (data.length === 0) return undefined;
    this.size += data.length;
    if (this.#file) return this.#file.write(data).then(() => undefined);
    this.#memory.push(data);
    if (this.size > this.#storage.memoryThreshold) return this.#moveToFile();
    return undefined;
  }

  async #moveToFile(): Promise<void> {
    await mkdir(this.#storage.spoolDir, { recursive: true });
    this.#path = join(this.#storage.spoolDir, `${Date.now()}-${randomBytes(6).toString("hex")}.eml`);
    this.#file = await open(this.#path, "w", 0o600);
    for (const buffered of this.#memory) await this.#file.write(buffered);
    this.#memory.length = 0;
  }

  /** Closes the file (if any) and returns where the bytes are. */
  async finish(): Promise<SpooledBody> {
    if (this.#file) await this.#file.close();
    this.#file = undefined;
    return this.#path ? { kind: "file", path: this.#path } : { kind: "memory", chunks: this.#memory };
  }

  /**
   * Drops the bytes and removes the file. Safe to call more than once, and never throws: it runs
   * after the reply is decided (a message already stored must still get its 250), so a removal
   * the disk refuses (read-only, failing) is retried later instead (leftover-files.ts).
   */
  readonly discard = async (): Promise<void> => {
    this.#memory.length = 0;
    await this.#file?.close().catch(() => undefined);
    this.#file = undefined;
    const path = this.#path;
    this.#path = undefined;
    if (path) await removeOrRetryLater(path);
  };
}

/**
 * Spools a replacement body. Line ends become CRLF (a bare LF or CR would otherwise reach stores
 * and next hops that require CRLF, the same smuggling risk DATA is guarded against).
 */
export async function spoolBody(
  source: Buffer | string | AsyncIterable<Buffer | string>,
  storage: SpoolStorage,
): Promise<{ body: SpooledBody; size: number; discard: () => Promise<void> }> {
  const writer = new SpoolWriter(storage);
  let pendingCR = false;
  const put = async (chunk: Buffer | string) => {
    let text =
      (pendingCR ? "\r" : "") + (typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk).toString("latin1");
    pendingCR = text.endsWith("\r");
    if (pendingCR) text = text.slice(0, -1);
    await writer.write(Buffer.from(text.replace(/\r\n|\r|\n/g, "\r\n"), "latin1"));
  };
  try {
    if (typeof source === "string" || Buffer.isBuffer(source)) await put(source);
    else for await (const chunk of source) await put(chunk);
    if (pendingCR) await writer.write(Buffer.from("\r\n"));
    return { body: await writer.finish(), size: writer.size, discard: writer.discard };
  } catch (error) {
    await writer.discard();
    throw error;
  }
}
