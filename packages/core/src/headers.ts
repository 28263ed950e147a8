// The message's header block, parsed once when a plugin first reads it.

export interface HeaderField {
  /** The field name as written. */
  readonly name: string;
  /** The unfolded value, without the leading space. */
  readonly value: string;
  /** The field exactly as received, folding and final CRLF included. */
  readonly raw: string;
}

export class HeaderList implements Iterable<HeaderField> {
  readonly fields: readonly HeaderField[];

  constructor(fields: readonly HeaderField[]) {
    this.fields = fields;
  }

  /** How many fields there are. */
  get length(): number {
    return this.fields.length;
  }

  /** The first value of a field, case-insensitive. */
  get(name: string): string | undefined {
    const lower = name.toLowerCase();
    return this.fields.find((field) => field.name.toLowerCase() === lower)?.value;
  }

  getAll(name: string): string[] {
    const lower = name.toLowerCase();
    return this.fields.filter((field) => field.name.toLowerCase() === lower).map((field) => field.value);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  [Symbol.iterator](): Iterator<HeaderField> {
    return this.fields[Symbol.iterator]();
  }
}

/**
 * A stretch of the header block: a field, or bytes that are not one (an mbox "From " line, a
 * continuation line with no field before it). Joined in order, the texts are the block exactly.
 */
export interface HeaderSegment {
  readonly field: HeaderField | undefined;
  /** The bytes as latin1 text (one char per byte). */
  readonly text: string;
}

/** A line that starts a field: a field name (RFC 5322 §3.6.8, no CR/LF/space), optional blanks, a colon. */
const fieldStart = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

/**
 * Splits a header block (the bytes before the first empty line) into fields and the rest. The
 * header section ends at the first line that is neither a field nor its continuation, as Postfix
 * and mail readers see it: what follows is kept in the bytes but never listed as a field (a From
 * below such a line would be seen by DMARC but be body to the reader).
 */
export function parseHeaderSegments(block: Buffer): HeaderSegment[] {
  // latin1 keeps every byte as one char, so raw round-trips; values are decoded as UTF-8 below.
  const text = block.toString("latin1");
  const segments: HeaderSegment[] = [];
  const lines = text.split(/(?<=\n)/);
  let current: string[] = [];
  let ended = false;
  const flush = () => {
    if (current.length === 0) return;
    const raw = current.join("");
    current = [];
    // The name comes from the first line only: a colon on a folded line never makes a name.
    const match = fieldStart.exec(raw.slice(0, raw.indexOf("\n") === -1 ? raw.length : raw.indexOf("\n")));
    const name = match?.[1];
    if (!name) {
      ended = true;
      segments.push({ field: undefined, text: raw });
      return;
    }
    const value = Buffer.from(raw.slice(match[0].length), "latin1")
      .toString("utf8")
      .replace(/\r?\n(?=[ \t])/g, "")
      .replace(/\r?\n$/, "")
      .trim();
    segments.push({ field: { name, value, raw }, text: raw });
  };
  for (const line of lines) {
    if (ended) {
      segments.push({ field: undefined, text: line });
      continue;
    }
    if (line.startsWith(" ") || line.startsWith("\t")) {
      if (current.length > 0) current.push(line);
      else {
        ended = true;
        segments.push({ field: undefined, text: line });
      }
      continue;
    }
    flush();
    if (ended) {
      segments.push({ field: undefined, text: line });
      continue;
    }
    current.push(line);
  }
  flush();
  return segments;
}

/** Parses a header block (the bytes before the first empty line), tolerating bad lines. */
export function parseHeaderBlock(block: Buffer): HeaderList {
  return new HeaderList(
    parseHeaderSegments(block)
      .map((segment) => segment.field)
      .filter((field) => field !== undefined),
  );
}

const fieldName = /^[\x21-\x39\x3b-\x7e]+$/;
/** A line break that is not CRLF + whitespace (folding), i.e. one the replacements below change. */
const unfoldedBreak = /\r(?!\n[ \t])|(?<!\r)\n|\n(?![ \t])/;

/** Formats one header field: validated name, line breaks only as folding, CRLF at the end. */
export function formatHeaderField(name: string, value: string): string {
  if (!fieldName.test(name)) throw new TypeError(`"${name}" is not a valid header field name`);
  // Most values have no line break but proper folding: nothing to replace then.
  if (!unfoldedBreak.test(value)) return `${name}: ${value}\r\n`;
  // Keep folding a plugin wrote (CRLF + whitespace); any other line break would start a new field.
  const safe = value
    .replace(/\r?\n(?=[ \t])/g, "\uE000")
    .replace(/[\r\n]+/g, " ")
    .replace(/\uE000/g, "\r\n");
  return `${name}: ${safe}\r\n`;
}
