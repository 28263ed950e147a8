// Request signing, so the receiver knows a POST came from its Postern and was not replayed:
//
//   X-Postern-Timestamp: <unix seconds>
//   X-Postern-Envelope:  <JSON: mailFrom, recipients, route, queueId> (ASCII; non-ASCII as \uXXXX)
//   X-Postern-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + envelope + "." + body)>
//
// The envelope is signed with the body because in the raw format it travels only in that header.
// Verification: recompute over the exact body bytes, compare in constant time, and refuse
// timestamps outside a tolerance (default 5 minutes) against replays.
import { createHmac, type Hmac, timingSafeEqual } from "node:crypto";

export const signatureHeader = "x-postern-signature";
export const timestampHeader = "x-postern-timestamp";
export const envelopeHeader = "x-postern-envelope";

export interface WebhookEnvelope {
  mailFrom: string;
  recipients: string[];
  route: string;
  queueId: string;
}

/** JSON with every non-ASCII character escaped, so it is a valid HTTP header value. */
export function encodeEnvelope(envelope: WebhookEnvelope): string {
  return JSON.stringify(envelope).replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Starts a signature; feed it the body with update(), then digest("hex"). */
export function startSignature(secret: string, timestamp: string, envelope: string): Hmac {
  return createHmac("sha256", secret).update(`${timestamp}.${envelope}.`);
}

type HeaderSource = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((candidate) => candidate.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

export interface VerifyOptions {
  /** The shared secret; several while rotating (any may match). */
  secret: string | readonly string[];
  /** The request headers (a Fetch Headers object or Node's IncomingMessage.headers). */
  headers: HeaderSource;
  /** The exact body bytes as received. */
  body: Uint8Array | string;
  /** Largest accepted clock difference, in seconds (default 300). */
  toleranceSeconds?: number;
  /** The current time in ms (for tests). */
  now?: number;
}

export type VerifyResult =
  | { ok: true; timestamp: number; envelope: WebhookEnvelope }
  | { ok: false; reason: "missing-headers" | "bad-timestamp" | "expired" | "bad-envelope" | "mismatch" };

/** Checks a webhook request's signature and timestamp. Never throws for a bad request. */
export function verifyWebhook(options: VerifyOptions): VerifyResult {
  const signature = header(options.headers, signatureHeader);
  const timestamp = header(options.headers, timestampHeader);
  const envelope = header(options.headers, envelopeHeader);
  if (!signature || !timestamp || envelope === undefined) return { ok: false, reason: "missing-headers" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "bad-timestamp" };
  const seconds = Number(timestamp);
  const now = (options.now ?? Date.now()) / 1000;
  if (Math.abs(now - seconds) > (options.toleranceSeconds ?? 300)) return { ok: false, reason: "expired" };
  const given = /^v1=([0-9a-f]{64})$/.exec(signature.trim())?.[1];
  if (!given) return { ok: false, reason: "mismatch" };
  const givenBytes = Buffer.from(given, "hex");
  const body = typeof options.body === "string" ? Buffer.from(options.body, "utf8") : options.body;
  const secrets = typeof options.secret === "string" ? [options.secret] : options.secret;
  const matches = secrets.some((secret) => {
    const expected = startSignature(secret, timestamp, envelope).update(body).digest();
    return timingSafeEqual(expected, givenBytes);
  });
  if (!matches) return { ok: false, reason: "mismatch" };
  try {
    return { ok: true, timestamp: seconds, envelope: JSON.parse(envelope) as WebhookEnvelope };
  } catch {
    return { ok: false, reason: "bad-envelope" };
  }
}
