// One POST with undici and what its outcome means for the SMTP reply. Nothing here accepts mail
// unless the endpoint answered 2xx; every other outcome is a temporary failure (the sender keeps
// the message and retries) except an HTTP 4xx, which the operator may turn into a rejection.
import type { Readable } from "node:stream";
import { type Dispatcher, errors, request } from "undici";

export type PostOutcome =
  | { kind: "accepted"; status: number }
  | { kind: "refused"; status: number }
  | { kind: "failed"; status: number | undefined; reason: string; enhanced: "4.4.0" | "4.4.1" | "4.4.2" | "4.4.5" };

export interface PostRequest {
  url: string;
  dispatcher: Dispatcher;
  headers: Record<string, string>;
  body: Readable | Buffer;
  signal: AbortSignal;
  timeoutMs: number;
}

/** Error codes of a connection that could not be made (nothing reached the endpoint). */
const unreachable = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function errorCode(error: unknown): string | undefined {
  let current = error as { code?: string; cause?: unknown } | undefined;
  for (let depth = 0; current && depth < 5; depth++) {
    if (typeof current.code === "string") return current.code;
    current = current.cause as typeof current;
  }
  return undefined;
}

export async function post(requestOptions: PostRequest, timeout: AbortSignal): Promise<PostOutcome> {
  const signal = AbortSignal.any([requestOptions.signal, timeout]);
  try {
    const response = await request(requestOptions.url, {
      method: "POST",
      dispatcher: requestOptions.dispatcher,
      headers: requestOptions.headers,
      body: requestOptions.body,
      signal,
      headersTimeout: requestOptions.timeoutMs,
      bodyTimeout: requestOptions.timeoutMs,
    });
    // The answer's body is not used, but must be read for the connection to be reused.
    await response.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    const status = response.statusCode;
    if (status >= 200 && status < 300) return { kind: "accepted", status };
    if (status === 408) return { kind: "failed", status, reason: `HTTP ${status}`, enhanced: "4.4.1" };
    if (status === 429 || status === 503)
      return { kind: "failed", status, reason: `HTTP ${status}`, enhanced: "4.4.5" };
    if (status >= 400 && status < 500) return { kind: "refused", status };
    // 5xx, and 1xx/3xx (redirects are not followed: a moved endpoint is a configuration error).
    return { kind: "failed", status, reason: `HTTP ${status}`, enhanced: "4.4.0" };
  } catch (error) {
    if (timeout.aborted) return { kind: "failed", status: undefined, reason: "timeout", enhanced: "4.4.1" };
    if (requestOptions.signal.aborted) throw error; // the hook's own deadline: core answers
    const code = errorCode(error);
    if (error instanceof errors.HeadersTimeoutError || error instanceof errors.BodyTimeoutError) {
      return { kind: "failed", status: undefined, reason: "timeout", enhanced: "4.4.1" };
    }
    if (code && unreachable.has(code)) return { kind: "failed", status: undefined, reason: code, enhanced: "4.4.1" };
    return { kind: "failed", status: undefined, reason: code ?? (error as Error).message, enhanced: "4.4.2" };
  }
}
