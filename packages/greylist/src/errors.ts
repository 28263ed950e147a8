// Errors of @postern/greylist: core's PosternError with a stable code of this package.
import { PosternError } from "@postern/core";

export type GreylistErrorCode =
  /** The store (Redis) did not answer, or answered an error. */
  "POSTERN_GREYLIST_STORE_FAILED";

export class GreylistError extends PosternError {
  declare readonly code: GreylistErrorCode;

  constructor(code: GreylistErrorCode, message: string, options: { hook?: string; cause?: unknown } = {}) {
    super(code, message, { plugin: "@postern/greylist", hook: options.hook, cause: options.cause });
  }
}
