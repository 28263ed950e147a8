// Errors of @postern/clamav as values with a stable code, so the one log line a failed scan writes
// names the cause (clamd down, slow, or answering an error).
// (Core's PosternError takes only core's own codes today; see the README's "Not done".)

export type ClamavErrorCode =
  /** clamd could not be reached (refused, no such socket). */
  | "POSTERN_CLAMAV_UNREACHABLE"
  /** clamd did not accept the connection or answer the scan in time. */
  | "POSTERN_CLAMAV_TIMEOUT"
  /** The connection broke, or clamd closed it without an answer. */
  | "POSTERN_CLAMAV_CONNECTION_LOST"
  /** clamd answered with an error (e.g. a database problem, or a limit of its own). */
  | "POSTERN_CLAMAV_SCAN_ERROR";

export class ClamavError extends Error {
  readonly code: ClamavErrorCode;
  readonly plugin = "@postern/clamav";
  readonly hook = "data";

  constructor(code: ClamavErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "ClamavError";
    this.code = code;
  }
}
