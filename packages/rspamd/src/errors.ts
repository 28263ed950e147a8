// Errors of @postern/rspamd: core's PosternError with a stable code of this package, so the one log
// line a failed check writes names the cause (rspamd down, slow, answering an error, or garbled).
import { PosternError } from "@postern/core";

export type RspamdErrorCode =
  /** rspamd could not be reached (connection refused, no such socket). */
  | "POSTERN_RSPAMD_UNREACHABLE"
  /** rspamd did not answer within `timeoutMs`. */
  | "POSTERN_RSPAMD_TIMEOUT"
  /** The connection broke, or rspamd closed it before a whole reply. */
  | "POSTERN_RSPAMD_CONNECTION_LOST"
  /** rspamd answered with an HTTP status other than 200 (its own error, e.g. a message too large). */
  | "POSTERN_RSPAMD_HTTP_STATUS"
  /** The reply is not the JSON rspamd's protocol describes, or names an action Postern does not know. */
  | "POSTERN_RSPAMD_BAD_REPLY";

export class RspamdError extends PosternError {
  declare readonly code: RspamdErrorCode;

  constructor(code: RspamdErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { plugin: "@postern/rspamd", hook: "data", cause: options.cause });
  }
}
