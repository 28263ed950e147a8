// One /checkv2 request to rspamd over Node's HTTP client: the message streamed as the body (with
// backpressure, at the pace rspamd reads), one deadline for the whole exchange, and every failure
// turned into an RspamdError whose code says what went wrong. node:http rather than fetch: it
// streams a Node Readable as a request body directly and reaches a Unix socket (`socketPath`),
// which fetch only does through undici's own Agent (a dependency this package would then carry).
// rspamd's normal worker closes every connection after its reply, so there is nothing to pool.
import { request as httpRequest, type IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { RspamdError } from "./errors.ts";
import { snippet } from "./reply.ts";

export type RspamdEndpoint =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number; readonly basePath: string }
  | { readonly kind: "unix"; readonly path: string };

/** "http://127.0.0.1:11333", "http://[::1]:11333/prefix" or "unix:/run/rspamd/worker.sock". */
export function parseEndpoint(text: string): RspamdEndpoint | undefined {
  const unix = /^unix:(\/.+)$/.exec(text);
  if (unix) return { kind: "unix", path: unix[1]! };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" || url.username || url.password || url.search || url.hash) return undefined;
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (host === "") return undefined;
  return { kind: "tcp", host, port: Number(url.port || 80), basePath: url.pathname.replace(/\/+$/, "") };
}

export function describeEndpoint(endpoint: RspamdEndpoint): string {
  if (endpoint.kind === "unix") return `unix:${endpoint.path}`;
  const host = endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host;
  return `http://${host}:${endpoint.port}${endpoint.basePath}`;
}

export interface CheckRequest {
  /** rspamd's request headers (IP, Helo, From, Rcpt …); a list repeats the header. */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  /** The message; read once, at the pace rspamd takes it. */
  readonly body: Readable;
  /** Its exact length in bytes (sent as Content-Length). */
  readonly size: number;
  /** The whole exchange: connecting, sending, rspamd's scan and its reply. */
  readonly timeoutMs: number;
  /** Aborted by the caller (the hook's own deadline). */
  readonly signal?: AbortSignal | undefined;
  /** A reply longer than this is refused (default 8 MiB; a reply lists symbols, not the message). */
  readonly maxReplyBytes?: number;
}

/** Errors that mean nothing was listening where rspamd should be. */
const unreachableCodes = new Set([
  "ECONNREFUSED",
  "ENOENT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "EACCES",
]);

/** Posts the message to /checkv2 and resolves with the reply's body (status 200 only). */
export function checkv2(endpoint: RspamdEndpoint, request: CheckRequest): Promise<string> {
  const where = describeEndpoint(endpoint);
  const maxReplyBytes = request.maxReplyBytes ?? 8 * 1024 * 1024;
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    let connected = false;
    let response: IncomingMessage | undefined;
    const timer = setTimeout(() => {
      fail(
        new RspamdError("POSTERN_RSPAMD_TIMEOUT", `rspamd at ${where} did not answer within ${request.timeoutMs} ms`),
      );
    }, request.timeoutMs);
    const onAbort = () =>
      fail(
        new RspamdError("POSTERN_RSPAMD_TIMEOUT", `the check with rspamd at ${where} was abandoned (hook deadline)`),
      );

    const req = httpRequest({
      ...(endpoint.kind === "unix" ? { socketPath: endpoint.path } : { host: endpoint.host, port: endpoint.port }),
      method: "POST",
      path: `${endpoint.kind === "tcp" ? endpoint.basePath : ""}/checkv2`,
      agent: false,
      headers: { ...request.headers, "Content-Length": String(request.size), "User-Agent": "postern" },
    });

    function cleanup() {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onAbort);
    }
    function fail(error: RspamdError) {
      if (settled) return;
      settled = true;
      cleanup();
      request.body.destroy();
      response?.destroy();
      req.destroy();
      reject(error);
    }
    function succeed(body: string) {
      if (settled) return;
      settled = true;
      cleanup();
      request.body.destroy();
      req.destroy();
      resolve(body);
    }

    if (request.signal?.aborted) return onAbort();
    request.signal?.addEventListener("abort", onAbort, { once: true });

    req.on("socket", (socket) => {
      socket.setNoDelay(true);
      if (!socket.connecting) connected = true;
      else socket.once("connect", () => (connected = true));
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      // Once rspamd has answered, a write it no longer reads (EPIPE) does not matter.
      if (response) return;
      const code = error.code ?? "";
      if (!connected && unreachableCodes.has(code)) {
        fail(
          new RspamdError("POSTERN_RSPAMD_UNREACHABLE", `cannot connect to rspamd at ${where} (${code})`, {
            cause: error,
          }),
        );
        return;
      }
      fail(
        new RspamdError(
          "POSTERN_RSPAMD_CONNECTION_LOST",
          `the connection to rspamd at ${where} broke before its reply (${code || error.message})`,
          { cause: error },
        ),
      );
    });
    req.on("response", (incoming) => {
      response = incoming;
      const chunks: Buffer[] = [];
      let length = 0;
      incoming.on("data", (chunk: Buffer) => {
        length += chunk.length;
        if (length > maxReplyBytes) {
          fail(new RspamdError("POSTERN_RSPAMD_BAD_REPLY", `rspamd's reply is longer than ${maxReplyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      incoming.on("error", (error) =>
        fail(
          new RspamdError(
            "POSTERN_RSPAMD_CONNECTION_LOST",
            `rspamd at ${where} broke off its reply (${error.message})`,
            {
              cause: error,
            },
          ),
        ),
      );
      incoming.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (incoming.statusCode === 200) return succeed(body);
        fail(
          new RspamdError(
            "POSTERN_RSPAMD_HTTP_STATUS",
            `rspamd at ${where} answered HTTP ${incoming.statusCode}: ${errorText(body)}`,
          ),
        );
      });
    });

    request.body.on("error", (error) =>
      fail(
        new RspamdError("POSTERN_RSPAMD_CONNECTION_LOST", `reading the message for rspamd failed (${error.message})`, {
          cause: error,
        }),
      ),
    );
    // The request is never end()ed: Content-Length tells rspamd where the body stops, and end()
    // would write a last, empty chunk after it. rspamd answers and closes as soon as it has the
    // body, so that empty write can meet the closed socket (EPIPE over a Unix socket, seen under
    // load) and Node then reports the error before it reads the reply already waiting for it.
    request.body.pipe(req, { end: false });
  });
}

/** rspamd's error replies are {"error": "..."}; anything else is shown as it starts. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === "string") return parsed.error;
  } catch {
    // not JSON: show the start of it
  }
  return snippet(body);
}
