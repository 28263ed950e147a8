// A new body sent by a milter (SMFIR_REPLBODY, in as many packets as it likes) is kept in memory up
// to a small threshold and in a spool file above it, so a milter replacing a 30 MB body does not
// put 30 MB in memory. It is read back as a stream when the change is applied, then removed.
import { createReadStream } from "node:fs";
import { type FileHandle, mkdtemp, open, rm } from "node:fs/promises";
import { join } from "node:path";

const memoryThreshold = 256 * 1024;

export class ReplacementBody {
  readonly #spoolDir: string;
  #chunks: Buffer[] = [];
  #inMemory = 0;
  #file: { dir: string; path: string; handle: FileHandle | undefined } | undefined;
  #size = 0;

  constructor(spoolDir: string) {
    this.#spoolDir = spoolDir;
  }

  get size(): number {
    return this.#size;
  }

  async append(chunk: Buffer): Promise<void> {
    this.#size += chunk.length;
    if (!this.#file && this.#inMemory + chunk.length <= memoryThreshold) {
      this.#chunks.push(chunk);
      this.#inMemory += chunk.length;
      return;
    }
    if (!this.#file) {
      const dir = await mkdtemp(join(this.#spoolDir, "milter-body-"));
      const path = join(dir, "body");
      const handle = await open(path, "wx", 0o600);
      this.#file = { dir, path, handle };
      for (const buffered of this.#chunks) await handle.write(buffered);
      this.#chunks = [];
      this.#inMemory = 0;
    }
    await this.#file.handle!.write(chunk);
  }

  /** Stops writing; the body can be read from now on. */
  async finish(): Promise<void> {
    await this.#file?.handle?.close();
    if (this.#file) this.#file.handle = undefined;
  }

  /** The body's bytes, streamed. */
  source(): AsyncIterable<Buffer> {
    if (this.#file) return createReadStream(this.#file.path, { highWaterMark: 64 * 1024 });
    const chunks = this.#chunks;
    return (async function* () {
      yield* chunks;
    })();
  }

  /** Removes the spool file (after the change was applied, or when it never will be). */
  async discard(): Promise<void> {
    await this.#file?.handle?.close().catch(() => undefined);
    if (this.#file) await rm(this.#file.dir, { recursive: true, force: true });
    this.#file = undefined;
    this.#chunks = [];
  }
}
