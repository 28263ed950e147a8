// The received message as hooks and storage plugins see it: the original bytes (in memory or in a
// spool file), the parsed headers, and the header fields plugins prepend. `stream()` may be called
// any number of times and always yields prepended fields (newest first) + the original bytes.
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { formatHeaderField, type HeaderList } from "./headers.ts";

export interface Message {
  /** Size of the original message in bytes (without prepended fields). */
  readonly size: number;
  readonly headers: HeaderList;
  /** Fields prepended so far, newest first, each formatted with its CRLF. */
  readonly prepended: readonly string[];
  /** The final message: prepended header fields, then the original bytes unchanged. */
  stream(): Readable;
  /** The original bytes as received (after the bare-newline policy), without prepended fields. */
  original(): Readable;
  /** Adds a header field on top of the message (trace and Authentication-Results fields). */
  prepend(name: string, value: string): void;
  /** Removes a prepended field by name (e.g. to replace one). Returns how many were removed. */
  unprepend(name: string): number;
}

export type SpooledBody = { kind: "memory"; chunks: readonly Buffer[] } | { kind: "file"; path: string };

export class SpooledMessage implements Message {
  readonly size: number;
  readonly headers: HeaderList;
  readonly #body: SpooledBody;
  #prepended: string[] = [];

  constructor(body: SpooledBody, size: number, headers: HeaderList) {
    this.#body = body;
    this.size = size;
    this.headers = headers;
  }

  get prepended(): readonly string[] {
    return this.#prepended;
  }

  /** Path of the spool file when the message did not fit the memory threshold. */
  get spoolPath(): string | undefined {
    return this.#body.kind === "file" ? this.#body.path : undefined;
  }

  prepend(name: string, value: string): void {
    this.#prepended.unshift(formatHeaderField(name, value));
  }

  unprepend(name: string): number {
    const prefix = `${name.toLowerCase()}:`;
    const before = this.#prepended.length;
    this.#prepended = this.#prepended.filter((field) => !field.toLowerCase().startsWith(prefix));
    return before - this.#prepended.length;
  }

  original(): Readable {
    if (this.#body.kind === "file") return createReadStream(this.#body.path, { highWaterMark: 256 * 1024 });
    return Readable.from(this.#body.chunks, { objectMode: false });
  }

  stream(): Readable {
    const header = Buffer.from(this.#prepended.join(""), "utf8");
    const original = this.original();
    return Readable.from(
      (async function* () {
        if (header.length > 0) yield header;
        yield* original;
      })(),
      { objectMode: false },
    );
  }
}
