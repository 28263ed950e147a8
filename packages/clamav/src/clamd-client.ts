// clamd's INSTREAM command over TCP or a Unix socket: "zINSTREAM\0", then chunks each preceded by
// its length as a 32-bit big-endian number, then a zero length; clamd answers one NUL-terminated
// line ("stream: OK", "stream: <signature> FOUND", "... ERROR") and closes. Chunks are written with
// backpressure, so a message streams from the spool at the pace clamd reads it and never piles up
// in memory; clamd may answer early (its StreamMaxLength was reached), which ends the sending.
import { connect, type Socket } from "node:net";
import { ClamavError } from "./errors.ts";

export type ClamdAddress = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

export function describeClamdAddress(address: ClamdAddress): string {
  return address.kind === "unix" ? `unix:${address.path}` : `inet:${address.host}:${address.port}`;
}

export interface ScanOptions {
  /** Connecting (ms). */
  connectTimeoutMs: number;
  /** The whole scan: sending every chunk and reading the answer (ms). */
  scanTimeoutMs: number;
  /** Largest chunk written (clamd reads any size up to StreamMaxLength). */
  chunkSize: number;
  /** clamd's StreamMaxLength: a stream longer than this is not sent on (the answer is "oversize"). */
  maxBytes: number;
}

export type ScanVerdict =
  | { status: "clean" }
  | { status: "infected"; signature: string }
  /** clamd's StreamMaxLength was reached: the message was not (wholly) scanned. */
  | { status: "oversize" };

const sizeLimitReply = /size limit exceeded/i;

/** Reads clamd's one-line answer into a verdict, or a ClamavError for an ERROR line. */
export function parseScanReply(line: string): ScanVerdict {
  const text = line.replace(/\0+$/, "").trim();
  if (sizeLimitReply.test(text)) return { status: "oversize" };
  const found = /^(?:[^:]*:\s*)?(.+?)\s+FOUND$/.exec(text);
  if (found) return { status: "infected", signature: found[1]! };
  if (/^(?:[^:]*:\s*)?OK$/.test(text)) return { status: "clean" };
  throw new ClamavError("POSTERN_CLAMAV_SCAN_ERROR", `clamd answered "${text}"`);
}

function open(address: ClamdAddress, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      address.kind === "unix" ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new ClamavError(
          "POSTERN_CLAMAV_TIMEOUT",
          `no connection to clamd at ${describeClamdAddress(address)} within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new ClamavError(
          "POSTERN_CLAMAV_UNREACHABLE",
          `cannot connect to clamd at ${describeClamdAddress(address)} (${error.code ?? error.message})`,
          { cause: error },
        ),
      );
    });
  });
}

const endOfChunks = Buffer.alloc(4);

function lengthOf(size: number): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(size, 0);
  return prefix;
}

/** clamd's one answer on `socket`: resolves with the line, rejects when none can come. */
function readReply(socket: Socket, where: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const text = () => Buffer.concat(chunks).toString("utf8");
    socket.on("data", (bytes: Buffer) => {
      chunks.push(bytes);
      // One NUL-terminated line; clamd closes right after, but there is no need to wait for that.
      if (bytes.includes(0)) resolve(text());
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      // A broken pipe while sending: clamd stopped reading, usually after saying why.
      if (chunks.length > 0) return resolve(text());
      reject(
        new ClamavError(
          "POSTERN_CLAMAV_CONNECTION_LOST",
          `the connection to clamd at ${where} broke (${error.code ?? error.message})`,
          { cause: error },
        ),
      );
    });
    socket.on("close", () => {
      if (chunks.length > 0) return resolve(text());
      reject(
        new ClamavError("POSTERN_CLAMAV_CONNECTION_LOST", `clamd at ${where} closed the connection without an answer`),
      );
    });
  });
}

/** Scans `source` with clamd's INSTREAM; rejects with a ClamavError when clamd cannot answer in time. */
export async function scanStream(
  address: ClamdAddress,
  source: AsyncIterable<Buffer | string>,
  options: ScanOptions,
): Promise<ScanVerdict> {
  const where = describeClamdAddress(address);
  const started = Date.now();
  const socket = await open(address, Math.min(options.connectTimeoutMs, options.scanTimeoutMs));
  let timer: NodeJS.Timeout | undefined;
  try {
    const reply = readReply(socket, where);
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ClamavError(
              "POSTERN_CLAMAV_TIMEOUT",
              `clamd at ${where} did not answer within ${options.scanTimeoutMs} ms`,
            ),
          ),
        Math.max(0, options.scanTimeoutMs - (Date.now() - started)),
      );
    });
    const sending = send(socket, source, options, Promise.race([reply, timedOut]));
    const line = await Promise.race([
      reply,
      timedOut,
      sending.then((sent) => (sent === "oversize" ? undefined : reply)),
    ]);
    return line === undefined ? { status: "oversize" } : parseScanReply(line);
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/**
 * Writes the INSTREAM command, every chunk and the zero length, waiting for drain between writes;
 * stops as soon as `settled` settles (clamd answered early, or gave up), or before the stream
 * would pass `maxBytes`. Never rejects: what went wrong is clamd's answer (or its absence).
 */
async function send(
  socket: Socket,
  source: AsyncIterable<Buffer | string>,
  { chunkSize, maxBytes }: ScanOptions,
  settled: Promise<unknown>,
): Promise<"sent" | "stopped" | "oversize"> {
  let done = false;
  const stop = () => {
    done = true;
  };
  settled.then(stop, stop);
  const write = async (bytes: Buffer) => {
    if (socket.write(bytes)) return;
    await Promise.race([new Promise((resolve) => socket.once("drain", resolve)), settled]);
  };
  let total = 0;
  try {
    await write(Buffer.from("zINSTREAM\0", "latin1"));
    for await (const piece of source) {
      let bytes = typeof piece === "string" ? Buffer.from(piece, "utf8") : piece;
      total += bytes.length;
      if (total > maxBytes) return "oversize";
      while (bytes.length > 0) {
        if (done || socket.destroyed) return "stopped";
        const chunk = bytes.subarray(0, chunkSize);
        bytes = bytes.subarray(chunk.length);
        await write(lengthOf(chunk.length));
        await write(chunk);
      }
    }
    if (done || socket.destroyed) return "stopped";
    await write(endOfChunks);
    return "sent";
  } catch {
    // The reply (or the deadline) says what happened.
    return "stopped";
  }
}

/** clamd's PING (a setup check). */
export async function ping(address: ClamdAddress, timeoutMs: number): Promise<boolean> {
  const socket = await open(address, timeoutMs);
  try {
    const reply = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const timer = setTimeout(
        () => reject(new ClamavError("POSTERN_CLAMAV_TIMEOUT", "clamd did not answer PING")),
        timeoutMs,
      );
      socket.on("data", (bytes: Buffer) => chunks.push(bytes));
      socket.on("close", () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString("latin1"));
      });
      socket.on("error", () => undefined);
      socket.end("zPING\0");
    });
    return reply.replace(/\0+$/, "").trim() === "PONG";
  } finally {
    socket.destroy();
  }
}
