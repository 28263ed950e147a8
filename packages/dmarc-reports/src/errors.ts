// Errors of @postern/dmarc-reports: core's PosternError with a stable code of this package.
import { PosternError } from "@postern/core";

export type DmarcReportsErrorCode =
  /** The store refused to open, or to take the counted evaluations. */
  | "POSTERN_DMARC_REPORTS_STORE_FAILED"
  /** An aggregate report's XML is not well-formed, or lacks what the format requires. */
  | "POSTERN_DMARC_REPORT_INVALID";

export class DmarcReportsError extends PosternError {
  declare readonly code: DmarcReportsErrorCode;

  constructor(code: DmarcReportsErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { plugin: "@postern/dmarc-reports", cause: options.cause });
  }
}
