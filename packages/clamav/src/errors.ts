// Errors of @postern/clamav: core's PosternError with a stable code of this package, so the one log
// line a failed scan writes names the cause (clamd down, slow, or answering an error).
import { PosternError } from "@postern/core";

export type ClamavErrorCode =
  /** clamd could not be reached (refused, no such socket). */
  | "POSTERN_CLAMAV_UNREACHABLE"
  /** clamd did not accept the connection or answer the scan in time. */
  | "POSTERN_CLAMAV_TIMEOUT"
  /** The connection broke, or clamd closed it without an answer. */
  | "POSTERN_CLAMAV_CONNECTION_LOST"
  /** clamd answered with an error (e.g. a database problem, or a limit of its own). */
  | "POSTERN_CLAMAV_SCAN_ERROR";

export class ClamavError extends PosternError {
  declare readonly code: ClamavErrorCode;

  constructor(code: ClamavErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { plugin: "@postern/clamav", hook: "data", cause: options.cause });
  }
}
