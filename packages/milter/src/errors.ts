// Errors of @postern/milter: core's PosternError with a stable code of this package, the plugin,
// the hook (stage) where it happened and the milter it concerns, so one log line says what failed,
// where and why.
import { PosternError } from "@postern/core";

export type MilterErrorCode =
  /** The milter could not be reached (refused, no such socket, connect timeout). */
  | "POSTERN_MILTER_UNREACHABLE"
  /** The milter did not answer within the stage's timeout. */
  | "POSTERN_MILTER_TIMEOUT"
  /** The milter closed the connection (it died or gave up). */
  | "POSTERN_MILTER_CLOSED"
  /** The milter sent something the protocol does not allow here. */
  | "POSTERN_MILTER_PROTOCOL"
  /** The milter asked for actions or steps this client did not offer. */
  | "POSTERN_MILTER_NEGOTIATION"
  /** A change the milter asked for could not be made (e.g. an added recipient nobody claims). */
  | "POSTERN_MILTER_ACTION_FAILED";

export class MilterError extends PosternError {
  declare readonly code: MilterErrorCode;
  /** The milter's configured name. */
  readonly milter: string | undefined;

  constructor(
    code: MilterErrorCode,
    message: string,
    options: { milter?: string; hook?: string; cause?: unknown } = {},
  ) {
    super(code, message, { plugin: "@postern/milter", hook: options.hook, cause: options.cause });
    this.milter = options.milter;
  }
}

/** Any failure as a MilterError (keeping one that already is). */
export function asMilterError(error: unknown, milter: string, hook: string): MilterError {
  if (error instanceof MilterError) {
    if (error.milter && error.hook) return error;
    return new MilterError(error.code, error.message, { milter, hook, cause: error.cause });
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EPIPE" || code === "ECONNRESET") {
    return new MilterError("POSTERN_MILTER_CLOSED", `the connection broke (${code})`, { milter, hook, cause: error });
  }
  return new MilterError("POSTERN_MILTER_PROTOCOL", message, { milter, hook, cause: error });
}
