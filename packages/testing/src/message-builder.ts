// Builds RFC 5322 messages with CRLF line ends for tests.
import { randomBytes } from "node:crypto";

export interface MessageSpec {
  from?: string;
  to?: string | string[];
  subject?: string;
  /** Body text; LF line ends are turned into CRLF. */
  text?: string;
  /** Extra header fields, written after the standard ones in the order given. */
  headers?: Record<string, string> | [string, string][];
  messageId?: string;
  date?: Date;
}

export function buildMessage(spec: MessageSpec = {}): Buffer {
  const from = spec.from ?? "sender@example.org";
  const to = Array.isArray(spec.to) ? spec.to.join(", ") : (spec.to ?? "postmaster@localhost");
  const fields: [string, string][] = [
    ["From", from.includes("<") ? from : `<${from}>`],
    ["To", to],
    ["Subject", spec.subject ?? "Test message"],
    ["Date", (spec.date ?? new Date()).toUTCString().replace("GMT", "+0000")],
    ["Message-ID", spec.messageId ?? `<${randomBytes(8).toString("hex")}@example.org>`],
    ["MIME-Version", "1.0"],
    ["Content-Type", "text/plain; charset=utf-8"],
    ...(Array.isArray(spec.headers) ? spec.headers : Object.entries(spec.headers ?? {})),
  ];
  const body = (spec.text ?? "Hello from the Postern test kit.\n").replace(/\r?\n/g, "\r\n");
  const head = fields.map(([name, value]) => `${name}: ${value}\r\n`).join("");
  return Buffer.from(`${head}\r\n${body.endsWith("\r\n") ? body : `${body}\r\n`}`, "utf8");
}

/** A body of about `bytes` octets of 76-character lines, for size and streaming tests. */
export function bulkyText(bytes: number): string {
  const line = `${"0123456789abcdefghijklmnopqrstuvwxyz".repeat(3).slice(0, 76)}\n`;
  return line.repeat(Math.max(1, Math.ceil(bytes / line.length)));
}
