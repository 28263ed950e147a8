// Receives the DATA stream: counts bytes against the size limit, applies the bare CR / bare LF
// policy, the 998-octet line limit and the NUL policy (smtp-server passes all three through),
// finds the header block, and keeps the message in memory up to a threshold, on disk above it
// (spool-body.ts). The input is always read to its end, so smtp-server can send the reply for a
// refused message.
import type { Readable } from "node:stream";
import { noteTransientBytes } from "./buffer-reclaim.ts";
import { SpooledMessage } from "./message.ts";
import { SpoolWriter } from "./spool-body.ts";

export type BareNewlinePolicy = "reject" | "normalize";

export interface SpoolOptions {
  maxSize: number;
  memoryThreshold: number;
  spoolDir: string;
  bareNewlines: BareNewlinePolicy;
  /** RFC 5322 §2.1.1: 998 octets without the CRLF. */
  maxLineLength: number;
  /** Bytes read so far, updated as they arrive (the minimum DATA rate reads it). */
  progress?: { received: number } | undefined;
}

/**
 * Why a message was refused while it arrived. NUL is refused: RFC 5322 §2.3 does not allow it in
 * a message, 8BITMIME does not carry it (RFC 6152 §3), and IMAP stores cannot hand it to readers.
 */
export type SpoolProblem = "size" | "bare-newline" | "line-length" | "nul";

export type SpoolOutcome =
  | { ok: true; message: SpooledMessage; discard(): Promise<void> }
  | { ok: false; problem: SpoolProblem; size: number; discard(): Promise<void> };

const CR = 13;
const LF = 10;
const maxHeaderBlock = 1024 * 1024;
const headerEnd = Buffer.from("\r\n\r\n");

/** Rewrites bare CR and bare LF as CRLF; a CR at the very end is held back for the next chunk. */
function normalizeNewlines(chunk: Buffer, carriedCR: boolean): { data: Buffer; carryCR: boolean } {
  let text = (carriedCR ? "\r" : "") + chunk.toString("latin1");
  let carryCR = false;
  if (text.endsWith("\r")) {
    text = text.slice(0, -1);
    carryCR = true;
  }
  return { data: Buffer.from(text.replace(/\r\n|\r|\n/g, "\r\n"), "latin1"), carryCR };
}

class LineChecker {
  #previousWasCR = false;
  #lineLength = 0;
  bare = false;
  tooLong = false;
  nul = false;
  readonly maxLineLength: number;

  constructor(maxLineLength: number) {
    this.maxLineLength = maxLineLength;
  }

  check(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (chunk.indexOf(0) !== -1) this.nul = true;
    // A CR ending the previous chunk must be followed by LF here.
    if (this.#previousWasCR && chunk[0] !== LF) this.bare = true;
    let cr = chunk.indexOf(CR);
    while (cr !== -1) {
      if (cr + 1 < chunk.length && chunk[cr + 1] !== LF) this.bare = true;
      cr = chunk.indexOf(CR, cr + 1);
    }
    let lineStart = 0;
    let lf = chunk.indexOf(LF);
    while (lf !== -1) {
      const before = lf > 0 ? chunk[lf - 1] : this.#previousWasCR ? CR : undefined;
      if (before !== CR) this.bare = true;
      const length = this.#lineLength + (lf - lineStart) - (before === CR ? 1 : 0);
      if (length > this.maxLineLength) this.tooLong = true;
      this.#lineLength = 0;
      lineStart = lf + 1;
      lf = chunk.indexOf(LF, lineStart);
    }
    this.#lineLength += chunk.length - lineStart;
    // A line may not run on unterminated past the limit either (the +1 allows a pending CR).
    if (this.#lineLength > this.maxLineLength + 1) this.tooLong = true;
    this.#previousWasCR = chunk[chunk.length - 1] === CR;
  }

  finish(): void {
    if (this.#previousWasCR) this.bare = true;
  }
}

/**
 * Reads `input` to its end, handing every chunk to `take`, and waits (pausing the stream) only
 * while `take` is writing to disk. Plain "data" events: an async iterator would cost a promise and
 * a turn of the event loop per chunk, for messages that mostly sit in memory.
 */
function readAll(input: Readable, take: (chunk: Buffer) => Promise<void> | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    let writing: Promise<void> | undefined;
    let ended = false;
    let failed = false;
    const fail = (error: unknown) => {
      if (failed) return;
      failed = true;
      input.off("data", onData);
      // Keep draining, so smtp-server can go on to the next command (as a refused message does).
      input.resume();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      let pending: Promise<void> | undefined;
      try {
        pending = take(chunk);
      } catch (error) {
        fail(error);
        return;
      }
      if (!pending) return;
      input.pause();
      writing = pending.then(
        () => {
          writing = undefined;
          if (failed) return;
          if (ended) resolve();
          else input.resume();
        },
        (error: unknown) => fail(error),
      );
    };
    input.on("data", onData);
    input.once("end", () => {
      ended = true;
      if (!writing && !failed) resolve();
    });
    input.once("error", fail);
    // A stream closed without "end" (the client went away mid-DATA) is a failure.
    input.once("close", () => {
      if (!ended) fail(new Error("the DATA stream closed before its end"));
    });
  });
}

export async function spoolMessage(input: Readable, options: SpoolOptions): Promise<SpoolOutcome> {
  const checker = new LineChecker(options.maxLineLength);
  const writer = new SpoolWriter(options);
  let size = 0;
  /** Bytes read from the client, kept or not (size stops counting past the size limit). */
  let received = 0;
  let problem: SpoolProblem | undefined;
  let carryCR = false;
  const headerChunks: Buffer[] = [];
  let headerBytes = 0;
  let headerBlock: Buffer | undefined;

  const collectHeader = (data: Buffer) => {
    if (headerBlock !== undefined) return;
    headerChunks.push(data);
    headerBytes += data.length;
    // Usually the whole header block is in the first chunk: no copy then.
    const joined = headerChunks.length === 1 ? data : Buffer.concat(headerChunks);
    if (joined.length >= 2 && joined[0] === CR && joined[1] === LF) {
      headerBlock = Buffer.alloc(0); // no header section at all
      return;
    }
    const end = joined.indexOf(headerEnd);
    if (end !== -1) headerBlock = joined.subarray(0, end + 2);
    else if (headerBytes > maxHeaderBlock) headerBlock = joined.subarray(0, maxHeaderBlock);
    else {
      headerChunks.length = 0;
      headerChunks.push(joined);
    }
  };

  /** Keeps the bytes; a promise only when they go to the spool file (see SpoolWriter.write). */
  const store = (data: Buffer): Promise<void> | undefined => {
    if (data.length === 0) return undefined;
    size += data.length;
    if (size > options.maxSize) {
      problem ??= "size";
      return undefined;
    }
    collectHeader(data);
    return writer.write(data);
  };

  const take = (raw: Buffer): Promise<void> | undefined => {
    // Only a large message's buffers pile up faster than young-generation collections return
    // them; forcing full collections for the bytes of small ones cost ~30 µs per 10 KB message.
    received += raw.length;
    if (options.progress) options.progress.received = received;
    if (received > options.memoryThreshold) noteTransientBytes(raw.length);
    if (problem) return undefined; // keep reading to the end, store nothing more
    let chunk = raw;
    if (options.bareNewlines === "normalize") {
      const normalized = normalizeNewlines(chunk, carryCR);
      chunk = normalized.data;
      carryCR = normalized.carryCR;
    }
    checker.check(chunk);
    if (checker.bare) problem = "bare-newline";
    else if (checker.tooLong) problem = "line-length";
    else if (checker.nul) problem = "nul";
    else return store(chunk);
    return undefined;
  };

  try {
    await readAll(input, take);
    if (!problem && carryCR) {
      checker.check(Buffer.from("\r\n"));
      await store(Buffer.from("\r\n"));
    }
    checker.finish();
    if (!problem && checker.bare) problem = "bare-newline";
  } catch (error) {
    await writer.discard();
    throw error;
  }

  if (problem) {
    await writer.discard();
    return { ok: false, problem, size, discard: writer.discard };
  }
  const body = await writer.finish();
  // No empty line: the whole message is header (a header block cut at 1 MiB stays as it is).
  headerBlock ??= Buffer.concat(headerChunks);
  const message = new SpooledMessage(body, size, headerBlock, options);
  const discard = async () => {
    await message.dispose();
    await writer.discard();
  };
  return { ok: true, message, discard };
}
