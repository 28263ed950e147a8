// The file a queued message lives in: its record (envelope and recipients) ahead of its body,
// as Postfix's queue file keeps the envelope in front of the content, so a message is one file,
// one write and one flush instead of two of each.
//
//   Q2 <record length in bytes>\n
//   <record, JSON, that many bytes>\n
//   <the message, byte for byte>
//
// The head is read back when the spool is opened (and by an operator's shared reader); later
// versions of the record are separate .json files (fs-store.ts), so this file is written once.
import type { FileHandle } from "node:fs/promises";

const magic = "Q2 ";
/** "Q2 " + up to 10 digits + "\n": everything needed to find the record and the body. */
const firstLineMax = magic.length + 10 + 1;

/** The bytes in front of the body: first line and record. */
export function spoolHead(recordJson: string): Buffer {
  const record = Buffer.from(recordJson, "utf8");
  return Buffer.concat([Buffer.from(`${magic}${record.length}\n`, "latin1"), record, Buffer.from("\n", "latin1")]);
}

export interface SpoolHead {
  /** The record as written at enqueue. */
  readonly recordJson: string;
  /** Where the message's first byte is. */
  readonly bodyStart: number;
}

/** Reads the head of an open spool file; throws, naming the file, when it is not one. */
export async function readSpoolHead(handle: FileHandle, path: string): Promise<SpoolHead> {
  const first = Buffer.alloc(firstLineMax);
  const { bytesRead } = await handle.read(first, 0, firstLineMax, 0);
  const line = first.subarray(0, bytesRead).toString("latin1");
  const end = line.indexOf("\n");
  const digits = end === -1 ? "" : line.slice(magic.length, end);
  if (!line.startsWith(magic) || !/^[0-9]{1,10}$/.test(digits)) {
    throw new Error(`${path} is not a queue file: it does not start with "${magic}<record length>"`);
  }
  const recordStart = end + 1;
  const recordLength = Number(digits);
  const record = Buffer.alloc(recordLength);
  const { bytesRead: recordRead } = await handle.read(record, 0, recordLength, recordStart);
  if (recordRead !== recordLength) {
    throw new Error(`${path} is cut short: its record should be ${recordLength} bytes, ${recordRead} are there`);
  }
  return { recordJson: record.toString("utf8"), bodyStart: recordStart + recordLength + 1 };
}
