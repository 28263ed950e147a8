// The errors of the recipient directory: a lookup that failed (the backend is down, refused the
// query, answered something unusable) or took too long. They travel inside `tempfail` results; the
// plugin answers 451 4.3.0 for them and logs the cause.
import { PosternError } from "@postern/core";

export type DirectoryErrorCode =
  /** The backend could not answer: connection refused, query error, bind refused … */
  | "RECIPIENTS_LOOKUP_FAILED"
  /** The backend did not answer within its `timeoutMs`. */
  | "RECIPIENTS_LOOKUP_TIMEOUT"
  /** The backend answered with data that names no single mailbox (two users with one address). */
  | "RECIPIENTS_LOOKUP_AMBIGUOUS";

export class DirectoryError extends PosternError {
  declare readonly code: DirectoryErrorCode;
  /** Which backend failed, e.g. `ldap ldap://127.0.0.1:389`. */
  readonly backend: string;

  constructor(code: DirectoryErrorCode, backend: string, message: string, options: { cause?: unknown } = {}) {
    super(code, `${backend}: ${message}`, { plugin: "@postern/recipients", hook: "rcptTo", ...options });
    this.backend = backend;
  }

  /** Wraps whatever a backend threw, keeping a DirectoryError as it is. */
  static from(backend: string, error: unknown): DirectoryError {
    if (error instanceof DirectoryError) return error;
    // ldapts names its errors by result (InvalidCredentialsError) and leaves the message nearly
    // empty; pg puts everything in the message. Both are kept.
    const message =
      error instanceof Error
        ? [error.name !== "Error" ? error.name : "", error.message.trim()].filter(Boolean).join(": ")
        : String(error);
    return new DirectoryError("RECIPIENTS_LOOKUP_FAILED", backend, message, { cause: error });
  }
}
