// Replies as the queue records them: the next hop's own words when it answered, otherwise a
// reply made up here (DNS, connection, TLS) with the enhanced status an operator would expect.
import type { DeliveryReply } from "./queue/store.ts";

const replyPattern = /^(\d{3})[ -]?(?:(\d\.\d{1,3}\.\d{1,3})\s+)?([\s\S]*)$/;

/** Parses a server reply ("550 5.1.1 No such user", possibly multi-line) into its parts. */
export function parseReply(response: string, remote?: string): DeliveryReply {
  const lines = response
    .trim()
    .split(/\r?\n/)
    .map((line) => line.replace(/^\d{3}[ -]/, "").trim());
  const match = replyPattern.exec(response.trim());
  const code = match ? Number(match[1]) : 0;
  const klass = String(code)[0];
  const fallback = klass === "2" ? "2.0.0" : klass === "4" ? "4.0.0" : "5.0.0";
  const status = match?.[2] && match[2][0] === klass ? match[2] : fallback;
  const first = (lines[0] ?? "").replace(/^\d\.\d{1,3}\.\d{1,3}\s*/, "");
  const text = [first, ...lines.slice(1).map((line) => line.replace(/^\d\.\d{1,3}\.\d{1,3}\s*/, ""))]
    .filter(Boolean)
    .join(" / ");
  return { code: code || 451, status, text, remote };
}

/** A reply for something that happened on our side of the connection. */
export function localReply(status: `${4 | 5}.${number}.${number}`, text: string, remote?: string): DeliveryReply {
  return { code: status.startsWith("5") ? 550 : 451, status, text, remote };
}

export function isPermanent(reply: DeliveryReply): boolean {
  return reply.code >= 500;
}

/** "mx.example.com [192.0.2.1]:25" for logs and Remote-MTA. */
export function describeHost(name: string, address: string, port: number): string {
  const host = name === address ? `[${address}]` : `${name} [${address}]`;
  return port === 25 ? host : `${host}:${port}`;
}
