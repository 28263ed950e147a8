// How a counter store failure reaches the hooks: as an error value with a stable code, and as a
// warning that is logged at most once per interval however many sessions run into the outage.
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@postern/core";
import { PosternError } from "@postern/core";

export type RateLimitErrorCode = "POSTERN_RATE_LIMIT_STORE_TIMEOUT" | "POSTERN_RATE_LIMIT_STORE_FAILED";

export class RateLimitStoreError extends PosternError {
  declare readonly code: RateLimitErrorCode;

  constructor(code: RateLimitErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { cause: options.cause, plugin: "@postern/rate-limit" });
  }
}

/** Resolves with `work`, or rejects with a STORE_TIMEOUT error after `ms` (the work itself goes on). */
export function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new RateLimitStoreError(
            "POSTERN_RATE_LIMIT_STORE_TIMEOUT",
            `the counter store did not answer within ${ms} ms`,
          ),
        ),
      ms,
    );
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Any failure of the store as a RateLimitStoreError. */
export function storeError(error: unknown): RateLimitStoreError {
  if (error instanceof RateLimitStoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  // ioredis's own command timeout (set to the same bound) usually fires just before ours.
  if (message === "Command timed out") {
    return new RateLimitStoreError("POSTERN_RATE_LIMIT_STORE_TIMEOUT", "the counter store did not answer in time", {
      cause: error,
    });
  }
  return new RateLimitStoreError("POSTERN_RATE_LIMIT_STORE_FAILED", `the counter store failed: ${message}`, {
    cause: error,
  });
}

/** Logs store failures as warnings, one line per `intervalMs` with the number of failures since the last. */
export function outageReporter(intervalMs = 10_000) {
  let lastAt = 0;
  let since = 0;
  return (log: Logger, error: RateLimitStoreError, details: Record<string, unknown>): void => {
    since++;
    const now = Date.now();
    if (now - lastAt < intervalMs) return;
    log.warn(
      { ...details, code: error.code, err: error.cause ?? error, failures: since },
      `rate-limit: ${error.message}`,
    );
    lastAt = now;
    since = 0;
  };
}

/** Waits `ms` (a tarpit), or less when the hook's deadline aborts the wait. */
export async function tarpit(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  await sleep(ms, undefined, { signal }).catch(() => undefined);
}
