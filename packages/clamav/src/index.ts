// @postern/clamav — virus scanning with clamd. At end of DATA the message, as storage would receive
// it, is streamed to clamd (INSTREAM) in chunks; a virus refuses it with 554 5.7.1 naming the
// signature (or quarantines it). A message larger than clamd accepts, and a clamd that is down, slow or failing, get a
// stated policy (451 4.7.1 by default: fail closed, never a silent pass), said in one log line.
import {
  defer,
  type Logger,
  type Message,
  type Plugin,
  parseOptions,
  type ResultKey,
  reject,
  resultKey,
  type Verdict,
} from "@postern/core";
import { describeClamdAddress, ping, scanStream } from "./clamd-client.ts";
import { ClamavError } from "./errors.ts";
import { type ClamavOptions, type ClamavPolicy, clamavOptionsSchema } from "./options.ts";

export type { ClamdAddress, ScanOptions, ScanVerdict } from "./clamd-client.ts";
export { parseScanReply, scanStream } from "./clamd-client.ts";
export type { ClamavErrorCode } from "./errors.ts";
export { ClamavError } from "./errors.ts";
export type { ClamavOptions, ClamavPolicy } from "./options.ts";
export { parseClamdAddress } from "./options.ts";

export type ClamavResult =
  | { status: "clean"; durationMs: number }
  | { status: "infected"; signature: string; durationMs: number }
  /** Not scanned, and let through because the operator chose "accept" for this case. */
  | { status: "unscanned"; reason: "oversize" | "error"; detail: string };

/** The scan's result (on `transaction.results`), for plugins that run after this one. */
export const clamavResult: ResultKey<ClamavResult> = resultKey<ClamavResult>("clamav");

const pluginName = "@postern/clamav";

export default function clamav(options: ClamavOptions = {}): Plugin {
  const resolved = parseOptions(clamavOptionsSchema, options, pluginName);
  const where = describeClamdAddress(resolved.address);

  /** The oversize policy's answer; "accept" is recorded and logged, never silent. */
  const oversize = (
    message: Message,
    log: Logger,
    results: { set(value: ClamavResult): void },
  ): Verdict | undefined => {
    const detail = `message of ${message.size} bytes is over maxScanSize ${resolved.maxScanSize} (clamd's StreamMaxLength)`;
    return applyPolicy(resolved.oversize, "oversize", detail, log, results, {
      defer: () => defer("4.7.1", "Message too large to be scanned for viruses, try again later"),
      reject: () => reject("5.3.4", "Message too large to be scanned for viruses", 552),
    });
  };

  return {
    name: pluginName,
    async setup(server) {
      // A clamd that is not up yet is not a reason to refuse to start: mail gets onError meanwhile.
      const alive = await ping(resolved.address, resolved.timeouts.connectMs).catch(() => false);
      if (!alive)
        server.logger.warn({ plugin: pluginName, address: where }, `clamd at ${where} does not answer PING yet`);
    },
    hooks: {
      data: {
        timeoutMs: resolved.timeouts.connectMs + resolved.timeouts.scanMs + 2000,
        async handler(transaction, message, { log }) {
          const results = { set: (value: ClamavResult) => transaction.results.set(clamavResult, value) };
          if (message.size > resolved.maxScanSize) return oversize(message, log, results);
          const started = Date.now();
          try {
            const verdict = await scanStream(resolved.address, message.stream(), {
              connectTimeoutMs: resolved.timeouts.connectMs,
              scanTimeoutMs: resolved.timeouts.scanMs,
              chunkSize: resolved.chunkSize,
              maxBytes: resolved.maxScanSize,
            });
            const durationMs = Date.now() - started;
            if (verdict.status === "oversize") return oversize(message, log, results);
            if (verdict.status === "clean") {
              results.set({ status: "clean", durationMs });
              return undefined;
            }
            results.set({ status: "infected", signature: verdict.signature, durationMs });
            log.info(
              { signature: verdict.signature, durationMs, action: resolved.onVirus },
              `clamav: virus found: ${verdict.signature}`,
            );
            if (resolved.onVirus === "quarantine") {
              transaction.quarantine(`virus found: ${verdict.signature}`);
              return undefined;
            }
            return reject("5.7.1", `Message contains a virus (${verdict.signature})`, 554);
          } catch (error) {
            const failure =
              error instanceof ClamavError
                ? error
                : new ClamavError("POSTERN_CLAMAV_SCAN_ERROR", String(error), { cause: error });
            return applyPolicy(
              resolved.onError,
              "error",
              failure.message,
              log,
              results,
              {
                defer: () => defer("4.7.1", "Virus scanner unavailable, try again later"),
                reject: () => reject("5.7.1", "Virus scanner unavailable", 554),
              },
              failure.code,
            );
          }
        },
      },
    },
  } satisfies Plugin;
}

function applyPolicy(
  policy: ClamavPolicy,
  reason: "oversize" | "error",
  detail: string,
  log: Logger,
  results: { set(value: ClamavResult): void },
  verdicts: { defer(): Verdict; reject(): Verdict },
  code?: string,
): Verdict | undefined {
  const said = policy === "accept" ? "accepted unscanned" : policy === "defer" ? "deferred" : "rejected";
  log.warn({ code, reason, policy }, `clamav: ${detail}; message ${said}`);
  if (policy === "accept") {
    results.set({ status: "unscanned", reason, detail });
    return undefined;
  }
  return policy === "defer" ? verdicts.defer() : verdicts.reject();
}
