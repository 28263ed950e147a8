// Splits the final message (message.stream(), what storage would receive) into what the milter
// protocol sends: one packet per header field, then the body in chunks. Only the header block is
// buffered (bounded); the body streams through in chunks no larger than the negotiated size.
import { MilterError } from "./errors.ts";

export type MessagePart =
  | { kind: "header"; name: string /** The value's bytes: folding kept as received. */; value: Buffer }
  | { kind: "endOfHeaders" }
  | { kind: "body"; chunk: Buffer };

/** The header block a message may have before we give up (core bounds it at the same size). */
const maxHeaderBlock = 1024 * 1024;

export async function* messageParts(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  options: { chunkSize: number; leadingSpace: boolean },
): AsyncGenerator<MessagePart> {
  let head: Buffer = Buffer.alloc(0);
  let inBody = false;
  let pending: Buffer[] = [];
  let pendingLength = 0;

  const flushBody = function* (final: boolean): Generator<MessagePart> {
    if (pendingLength === 0) return;
    let all = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
    while (all.length >= options.chunkSize || (final && all.length > 0)) {
      const size = Math.min(options.chunkSize, all.length);
      yield { kind: "body", chunk: all.subarray(0, size) };
      all = all.subarray(size);
    }
    pending = all.length > 0 ? [all] : [];
    pendingLength = all.length;
  };

  for await (const piece of source) {
    const bytes = typeof piece === "string" ? Buffer.from(piece, "utf8") : piece;
    if (inBody) {
      pending.push(bytes);
      pendingLength += bytes.length;
      if (pendingLength >= options.chunkSize) yield* flushBody(false);
      continue;
    }
    head = head.length === 0 ? bytes : Buffer.concat([head, bytes]);
    const end = endOfHeaderBlock(head);
    if (end === undefined) {
      if (head.length > maxHeaderBlock) {
        throw new MilterError("POSTERN_MILTER_PROTOCOL", "the message's header block is larger than 1 MiB");
      }
      continue;
    }
    yield* headerParts(head.subarray(0, end.fieldsEnd), options.leadingSpace);
    yield { kind: "endOfHeaders" };
    inBody = true;
    const rest = head.subarray(end.bodyStart);
    head = Buffer.alloc(0);
    if (rest.length > 0) {
      pending.push(rest);
      pendingLength += rest.length;
      if (pendingLength >= options.chunkSize) yield* flushBody(false);
    }
  }
  if (!inBody) {
    // No empty line: the whole message is header fields, and the body is empty.
    yield* headerParts(head, options.leadingSpace);
    yield { kind: "endOfHeaders" };
    return;
  }
  yield* flushBody(true);
}

/** Where the header fields end and the body starts (after the empty line), if seen yet. */
function endOfHeaderBlock(head: Buffer): { fieldsEnd: number; bodyStart: number } | undefined {
  if (head.subarray(0, 2).equals(Buffer.from("\r\n"))) return { fieldsEnd: 0, bodyStart: 2 };
  const at = head.indexOf("\r\n\r\n");
  if (at === -1) return undefined;
  return { fieldsEnd: at + 2, bodyStart: at + 4 };
}

function* headerParts(block: Buffer, leadingSpace: boolean): Generator<MessagePart> {
  let start = 0;
  while (start < block.length) {
    // A field runs until a CRLF not followed by white space (folding continues it).
    let end = start;
    for (;;) {
      const lineEnd = block.indexOf("\r\n", end);
      if (lineEnd === -1) {
        end = block.length;
        break;
      }
      end = lineEnd + 2;
      const next = block[end];
      if (next !== 0x20 && next !== 0x09) break;
    }
    const field = block.subarray(start, end);
    start = end;
    const colon = field.indexOf(":");
    if (colon <= 0) continue; // not a field (e.g. an mbox "From " line): nothing a milter can address
    const name = field.subarray(0, colon).toString("latin1").trim();
    let value = field.subarray(colon + 1);
    if (value.subarray(-2).equals(Buffer.from("\r\n"))) value = value.subarray(0, -2);
    // Without SMFIP_HDR_LEADSPC the milter expects the value after "Name: ": one separating space
    // goes, so that "Name: " + value is the field's bytes again (what a signing milter rebuilds).
    if (!leadingSpace && (value[0] === 0x20 || value[0] === 0x09)) value = value.subarray(1);
    yield { kind: "header", name, value };
  }
}
