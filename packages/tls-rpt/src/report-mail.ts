// A report as mail (RFC 8460 §5.3): multipart/report; report-type="tlsrpt", a line of text for
// people and the gzip'd JSON as an application/tlsrpt+gzip attachment, with the
// TLS-Report-Domain and TLS-Report-Submitter header fields receivers sort by.
import { randomBytes } from "node:crypto";

export interface ReportMail {
  readonly from: string;
  readonly to: readonly string[];
  readonly submitter: string;
  readonly policyDomain: string;
  readonly reportId: string;
  readonly organizationName: string;
  readonly fileName: string;
  readonly gzipped: Buffer;
  readonly date: Date;
}

/** Base64 in 76-column lines (RFC 2045 §6.8). */
function base64Lines(bytes: Buffer): string {
  return (bytes.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n");
}

/** The whole message, CRLF line ends, ready for core's submit(). */
export function buildReportMail(mail: ReportMail): Buffer {
  const boundary = `tlsrpt-${randomBytes(12).toString("hex")}`;
  const messageId = `<${randomBytes(12).toString("hex")}.tlsrpt@${mail.submitter}>`;
  const lines = [
    `From: ${mail.from}`,
    `To: ${mail.to.join(", ")}`,
    `Date: ${mail.date.toUTCString().replace("GMT", "+0000")}`,
    `Subject: Report Domain: ${mail.policyDomain} Submitter: ${mail.submitter} Report-ID: <${mail.reportId}>`,
    `Message-ID: ${messageId}`,
    `TLS-Report-Domain: ${mail.policyDomain}`,
    `TLS-Report-Submitter: ${mail.submitter}`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    "",
    "This is a multipart message in MIME format.",
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 7bit",
    "",
    `This is an aggregate TLS report (RFC 8460) from ${mail.organizationName} about mail to ${mail.policyDomain}.`,
    "",
    `--${boundary}`,
    `Content-Type: application/tlsrpt+gzip; name="${mail.fileName}"`,
    "Content-Transfer-Encoding: base64",
    `Content-Disposition: attachment; filename="${mail.fileName}"`,
    "",
    base64Lines(mail.gzipped),
    "",
    `--${boundary}--`,
    "",
  ];
  return Buffer.from(lines.join("\r\n"));
}
