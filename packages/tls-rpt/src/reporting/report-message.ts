// A report as a mail message: header fields, a line of text for people and the report as a
// base64 attachment — the shape TLS-RPT (RFC 8460 §5.3) and DMARC aggregate reports share.
import { randomBytes } from "node:crypto";

export interface ReportMessage {
  readonly from: string;
  readonly to: readonly string[];
  readonly date: Date;
  readonly subject: string;
  /** The domain of the Message-ID (the report submitter). */
  readonly messageIdDomain: string;
  /** Header fields after the standard ones, e.g. TLS-Report-Domain. */
  readonly headers?: readonly (readonly [name: string, value: string])[];
  /** The top-level media type with its parameters but the boundary, e.g. 'multipart/report; report-type="tlsrpt"'. */
  readonly multipartType: string;
  readonly text: string;
  readonly attachment: { readonly contentType: string; readonly fileName: string; readonly bytes: Buffer };
}

/** Base64 in 76-column lines (RFC 2045 §6.8). */
function base64Lines(bytes: Buffer): string {
  return (bytes.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n");
}

/** The whole message, CRLF line ends, ready for core's submit(). */
export function buildReportMessage(mail: ReportMessage): Buffer {
  const boundary = `report-${randomBytes(12).toString("hex")}`;
  const messageId = `<${randomBytes(12).toString("hex")}.report@${mail.messageIdDomain}>`;
  const { contentType, fileName, bytes } = mail.attachment;
  const lines = [
    `From: ${mail.from}`,
    `To: ${mail.to.join(", ")}`,
    `Date: ${mail.date.toUTCString().replace("GMT", "+0000")}`,
    `Subject: ${mail.subject}`,
    `Message-ID: ${messageId}`,
    ...(mail.headers ?? []).map(([name, value]) => `${name}: ${value}`),
    "MIME-Version: 1.0",
    `Content-Type: ${mail.multipartType}; boundary="${boundary}"`,
    "",
    "This is a multipart message in MIME format.",
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 7bit",
    "",
    mail.text,
    "",
    `--${boundary}`,
    `Content-Type: ${contentType}; name="${fileName}"`,
    "Content-Transfer-Encoding: base64",
    `Content-Disposition: attachment; filename="${fileName}"`,
    "",
    base64Lines(bytes),
    "",
    `--${boundary}--`,
    "",
  ];
  return Buffer.from(lines.join("\r\n"));
}
