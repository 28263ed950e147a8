// Errors of @postern/tls-rpt: core's PosternError with a stable code of this package.
import { PosternError } from "@postern/core";

export type TlsRptErrorCode =
  /** The store refused to open, or to take the counted outcomes. */
  | "POSTERN_TLSRPT_STORE_FAILED"
  /** No destination of a report took it (it is tried again at the next run). */
  | "POSTERN_TLSRPT_SEND_FAILED";

export class TlsRptError extends PosternError {
  declare readonly code: TlsRptErrorCode;

  constructor(code: TlsRptErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { plugin: "@postern/tls-rpt", cause: options.cause });
  }
}
