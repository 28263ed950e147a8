// The received message as hooks and storage plugins see it: the original bytes (in memory or in a
// spool file), the parsed headers, and the header fields plugins prepend. `stream()` may be called
// any number of times and always yields prepended fields (newest first) + the original bytes,
// less any original header fields a plugin removed (e.g. a spoofed Authentication-Results).
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { formatHeaderField, type HeaderField, HeaderList } from "./headers.ts";

export interface Message {
  /** Size of the original message in bytes (without prepended fields). */
  readonly size: number;
  /** The original header fields, less those removed with removeHeader(). */
  readonly headers: HeaderList;
  /** Fields prepended so far, newest first, each formatted with its CRLF. */
  readonly prepended: readonly string[];
  /** The final message: prepended header fields, then the original bytes less removed fields. */
  stream(): Readable;
  /** The original bytes as received (after the bare-newline policy), without prepended fields. */
  original(): Readable;
  /** Adds a header field on top of the message (trace and Authentication-Results fields). */
  prepend(name: string, value: string): void;
  /** Removes a prepended field by name (e.g. to replace one). Returns how many were removed. */
  unprepend(name: string): number;
  /**
   * Drops original header fields for which `predicate` is true from stream() and `headers`
   * (e.g. an incoming Authentication-Results claiming our authserv-id, RFC 8601 §5). The bytes
   * of every other field and of the body stay as received; original() is unchanged. Returns
   * how many fields were removed by this call.
   */
  removeHeader(predicate: (field: HeaderField) => boolean): number;
}

export type SpooledBody = { kind: "memory"; chunks: readonly Buffer[] } | { kind: "file"; path: string };

export class SpooledMessage implements Message {
  readonly size: number;
  /** Parses the header block on first use: many messages pass through no plugin that reads them. */
  readonly #parseHeaders: () => HeaderList;
  #received: HeaderList | undefined;
  readonly #body: SpooledBody;
  #prepended: string[] = [];
  readonly #removed = new Set<HeaderField>();
  #headers: HeaderList | undefined;

  constructor(body: SpooledBody, size: number, headers: HeaderList | (() => HeaderList)) {
    this.#body = body;
    this.size = size;
    this.#parseHeaders = typeof headers === "function" ? headers : () => headers;
  }

  #original(): HeaderList {
    this.#received ??= this.#parseHeaders();
    return this.#received;
  }

  get headers(): HeaderList {
    this.#headers ??= this.#original();
    return this.#headers;
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

  removeHeader(predicate: (field: HeaderField) => boolean): number {
    let count = 0;
    for (const field of this.headers.fields) {
      if (!predicate(field)) continue;
      this.#removed.add(field);
      count++;
    }
    if (count > 0) this.#headers = new HeaderList(this.#original().fields.filter((field) => !this.#removed.has(field)));
    return count;
  }

  original(): Readable {
    if (this.#body.kind === "file") return createReadStream(this.#body.path, { highWaterMark: 256 * 1024 });
    return Readable.from(this.#body.chunks, { objectMode: false });
  }

  stream(): Readable {
    const header = Buffer.from(this.#prepended.join(""), "utf8");
    const original = this.original();
    const fields = this.#original().fields;
    const removed = new Set(this.#removed);
    return Readable.from(
      (async function* () {
        if (header.length > 0) yield header;
        if (removed.size === 0) {
          yield* original;
          return;
        }
        yield* withoutFields(original, fields, removed);
      })(),
      { objectMode: false },
    );
  }
}

/**
 * Yields `original` without the byte ranges of the `removed` fields. The fields were parsed from
 * these very bytes, in order, so each one's raw text is found at a line start after the previous
 * field; only the header block (at most the 1 MiB core parses) is buffered.
 */
async function* withoutFields(
  original: AsyncIterable<Buffer>,
  fields: readonly HeaderField[],
  removed: ReadonlySet<HeaderField>,
): AsyncGenerator<Buffer> {
  const last = fields.findLastIndex((field) => removed.has(field));
  const buffered: Buffer[] = [];
  let text = "";
  let position = 0;
  let index = 0;
  const ranges: [number, number][] = [];
  let located = false;
  for await (const chunk of original) {
    if (located) {
      yield chunk;
      continue;
    }
    buffered.push(chunk);
    text += chunk.toString("latin1");
    while (index <= last) {
      const field = fields[index]!;
      let at = text.indexOf(field.raw, position);
      while (at > 0 && text[at - 1] !== "\n") at = text.indexOf(field.raw, at + 1);
      if (at === -1) break; // not all of it has arrived yet
      if (removed.has(field)) ranges.push([at, at + field.raw.length]);
      position = at + field.raw.length;
      index++;
    }
    if (index > last) {
      located = true;
      const all = Buffer.concat(buffered);
      let from = 0;
      for (const [start, end] of ranges) {
        if (start > from) yield all.subarray(from, start);
        from = end;
      }
      if (from < all.length) yield all.subarray(from);
    }
  }
  if (!located) throw new Error("a removed header field was not found in the message bytes");
}
