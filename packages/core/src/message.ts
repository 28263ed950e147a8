// The received message as hooks and storage plugins see it, and the rewriting data hooks may do
// (the milter action set): add, insert, change and remove header fields, replace the body. Changes
// apply in order and every later reader sees them: `headers` is the header section as it stands,
// `stream()` the whole message as it stands (readable any number of times), `size` its length.
// `original()` stays the bytes as received (DKIM verification reads those).
//
// The header section is edited as a list of segments (fields, and any bytes that are not a field)
// whose texts joined are the header block exactly; the body is never copied for a header edit —
// stream() writes the edited header block, then the received bytes from where the block ended.
// A replaced body is spooled like DATA (memory up to a threshold, a file above), never held whole.
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { formatHeaderField, type HeaderField, HeaderList, type HeaderSegment, parseHeaderSegments } from "./headers.ts";
import { type SpooledBody, spoolBody } from "./spool-body.ts";

/** What replaceBody() takes: bytes, text, or a stream of either. */
export type BodySource = Buffer | string | AsyncIterable<Buffer | string>;

export interface Message {
  /** Bytes received in DATA (after the bare-newline policy), before any change. */
  readonly receivedSize: number;
  /** Bytes of the message as it stands: what stream() yields and a store writes. */
  readonly size: number;
  /** The header fields as they stand, top to bottom. */
  readonly headers: HeaderList;
  /** The fields this server wrote (trace, Authentication-Results, filters') still in the header, top to bottom. */
  readonly added: readonly HeaderField[];
  /** True once a data hook replaced the body. */
  readonly bodyReplaced: boolean;
  /** The message as it stands: the header section with every change, then the (possibly new) body. */
  stream(): Readable;
  /** The bytes as received, without any change. */
  original(): Readable;
  /** Puts a field on top (trace fields, Authentication-Results): insertHeader(0, …). */
  prepend(name: string, value: string): void;
  /** Puts a field at the end of the header section (milter SMFIR_ADDHEADER). */
  addHeader(name: string, value: string): void;
  /** Puts a field before the field at `index` (0 = top; past the end = at the end) (SMFIR_INSHEADER). */
  insertHeader(index: number, name: string, value: string): void;
  /**
   * Replaces the value of the `occurrence`-th (1-based) field named `name`, or removes it when
   * `value` is null (SMFIR_CHGHEADER). A missing occurrence with a value adds the field at the end.
   */
  changeHeader(name: string, occurrence: number, value: string | null): void;
  /** Removes the fields named `name` (only the `occurrence`-th, 1-based, when given). Returns how many. */
  removeHeader(name: string, occurrence?: number): number;
  /** Removes the fields for which `predicate` is true. Returns how many. */
  removeHeader(predicate: (field: HeaderField) => boolean): number;
  /** Replaces everything after the header section; streamed into the spool (SMFIR_REPLBODY). */
  replaceBody(source: BodySource): Promise<void>;
}

/** Where a replaced body is spooled. */
export interface BodyStorage {
  readonly memoryThreshold: number;
  readonly spoolDir: string;
}

interface Segment extends HeaderSegment {
  /** Original segments are latin1 text of received bytes; fields written by plugins are UTF-8. */
  readonly encoding: "latin1" | "utf8";
}

interface ReplacedBody {
  readonly body: SpooledBody;
  readonly size: number;
}

const CRLF = Buffer.from("\r\n");

function written(name: string, value: string): Segment {
  const text = formatHeaderField(name, value);
  const colon = text.indexOf(":");
  return {
    field: {
      name,
      value: text
        .slice(colon + 1)
        .replace(/\r\n(?=[ \t])/g, "")
        .trim(),
      raw: text,
    },
    text,
    encoding: "utf8",
  };
}

const sameName = (field: HeaderField | undefined, lower: string) =>
  field !== undefined && field.name.toLowerCase() === lower;

/**
 * Where the header section ends among the segments: before the first line that is not a field
 * (what follows it is body to mail readers), or at the end. Fields added "at the end" go there.
 */
function sectionEnd(segments: readonly Segment[]): number {
  const end = segments.findIndex((segment) => segment.field === undefined);
  return end === -1 ? segments.length : end;
}

function readBody(body: SpooledBody, start = 0): Readable {
  if (body.kind === "file") return createReadStream(body.path, { start, highWaterMark: 256 * 1024 });
  if (start === 0) return Readable.from(body.chunks, { objectMode: false });
  return Readable.from(skipBytes(body.chunks, start), { objectMode: false });
}

function* skipBytes(chunks: readonly Buffer[], skip: number): Generator<Buffer> {
  let left = skip;
  for (const chunk of chunks) {
    if (left >= chunk.length) {
      left -= chunk.length;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

export class SpooledMessage implements Message {
  readonly receivedSize: number;
  readonly #received: SpooledBody;
  /** The received header block (up to, not including, the empty line). */
  readonly #headerBlock: Buffer;
  readonly #storage: BodyStorage;
  #originalSegments: Segment[] | undefined;
  /** Fields put on top while nothing else changed, newest first: the common, cheap case. */
  #top: Segment[] = [];
  /** The whole header section once anything but a prepend changed it. */
  #segments: Segment[] | undefined;
  #replaced: ReplacedBody | undefined;
  #headers: HeaderList | undefined;
  readonly #cleanups: (() => Promise<void>)[] = [];

  constructor(received: SpooledBody, receivedSize: number, headerBlock: Buffer, storage: BodyStorage) {
    this.#received = received;
    this.receivedSize = receivedSize;
    this.#headerBlock = headerBlock;
    this.#storage = storage;
  }

  #original(): Segment[] {
    this.#originalSegments ??= parseHeaderSegments(this.#headerBlock).map((segment) => ({
      ...segment,
      encoding: "latin1" as const,
    }));
    return this.#originalSegments;
  }

  /** The header section as an editable list (from now on stream() writes it out). */
  #editable(): Segment[] {
    this.#segments ??= [...this.#top, ...this.#original()];
    this.#headers = undefined;
    return this.#segments;
  }

  get headers(): HeaderList {
    this.#headers ??= new HeaderList(
      (this.#segments ?? [...this.#top, ...this.#original()]).flatMap((segment) => segment.field ?? []),
    );
    return this.#headers;
  }

  get added(): readonly HeaderField[] {
    return (this.#segments ?? this.#top).flatMap((segment) =>
      segment.encoding === "utf8" && segment.field ? [segment.field] : [],
    );
  }

  get bodyReplaced(): boolean {
    return this.#replaced !== undefined;
  }

  get size(): number {
    const bodyBytes = this.#replaced ? CRLF.length + this.#replaced.size : this.receivedSize - this.#headerBlock.length;
    const segments = this.#segments ?? this.#top;
    let headerBytes = this.#segments ? 0 : this.#headerBlock.length;
    for (const segment of segments) headerBytes += Buffer.byteLength(segment.text, segment.encoding);
    return headerBytes + bodyBytes;
  }

  prepend(name: string, value: string): void {
    this.insertHeader(0, name, value);
  }

  addHeader(name: string, value: string): void {
    const segments = this.#editable();
    segments.splice(sectionEnd(segments), 0, written(name, value));
  }

  insertHeader(index: number, name: string, value: string): void {
    const segment = written(name, value);
    if (index <= 0 && !this.#segments) {
      this.#top.unshift(segment);
      this.#headers = undefined;
      return;
    }
    const segments = this.#editable();
    if (index <= 0) {
      segments.unshift(segment);
      return;
    }
    let fieldIndex = 0;
    const at = segments.findIndex((entry) => entry.field !== undefined && fieldIndex++ === index);
    segments.splice(at === -1 ? sectionEnd(segments) : at, 0, segment);
  }

  changeHeader(name: string, occurrence: number, value: string | null): void {
    const lower = name.toLowerCase();
    const segments = this.#editable();
    let seen = 0;
    const at = segments.findIndex((segment) => sameName(segment.field, lower) && ++seen === occurrence);
    if (at === -1) {
      if (value !== null) segments.splice(sectionEnd(segments), 0, written(name, value));
      return;
    }
    if (value === null) segments.splice(at, 1);
    else segments[at] = written(segments[at]!.field!.name, value);
  }

  removeHeader(which: string | ((field: HeaderField) => boolean), occurrence?: number): number {
    const lower = typeof which === "string" ? which.toLowerCase() : "";
    const matches = typeof which === "string" ? (field: HeaderField) => field.name.toLowerCase() === lower : which;
    // Look before editing: a removal that finds nothing, or only fields put on top, keeps the cheap path.
    if (!this.headers.fields.some(matches)) return 0;
    if (!this.#segments && occurrence === undefined && !this.#original().some((s) => s.field && matches(s.field))) {
      const before = this.#top.length;
      this.#top = this.#top.filter((segment) => !matches(segment.field!));
      this.#headers = undefined;
      return before - this.#top.length;
    }
    const segments = this.#editable();
    let seen = 0;
    let removed = 0;
    for (let index = 0; index < segments.length; index++) {
      const field = segments[index]!.field;
      if (!field || !matches(field)) continue;
      seen++;
      if (occurrence !== undefined && seen !== occurrence) continue;
      segments.splice(index--, 1);
      removed++;
    }
    return removed;
  }

  async replaceBody(source: BodySource): Promise<void> {
    const spooled = await spoolBody(source, this.#storage);
    this.#cleanups.push(spooled.discard);
    this.#replaced = { body: spooled.body, size: spooled.size };
  }

  original(): Readable {
    return readBody(this.#received);
  }

  stream(): Readable {
    const received = this.#received;
    const replaced = this.#replaced;
    if (!this.#segments && !replaced) {
      // Nothing but fields on top: those, then the received bytes as they are.
      const top = this.#top;
      if (top.length === 0) return readBody(received);
      const header = Buffer.from(top.map((segment) => segment.text).join(""), "utf8");
      return Readable.from(
        (async function* () {
          yield header;
          yield* readBody(received);
        })(),
        { objectMode: false },
      );
    }
    const header = Buffer.concat(
      (this.#segments ?? [...this.#top, ...this.#original()]).map((segment) =>
        Buffer.from(segment.text, segment.encoding),
      ),
    );
    const bodyStart = this.#headerBlock.length;
    return Readable.from(
      (async function* () {
        yield header;
        if (replaced) {
          yield CRLF;
          yield* readBody(replaced.body);
        } else {
          yield* readBody(received, bodyStart);
        }
      })(),
      { objectMode: false },
    );
  }

  /** The received header block as latin1 text (one char per byte), for core's cheap checks. */
  rawHeaderText(): string {
    return this.#headerBlock.toString("latin1");
  }

  /** Removes replacement bodies spooled to disk (core calls this when the transaction ends). */
  async dispose(): Promise<void> {
    for (const cleanup of this.#cleanups.splice(0)) await cleanup();
  }
}
