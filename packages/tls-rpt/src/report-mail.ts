// A report as mail (RFC 8460 §5.3): multipart/report; report-type="tlsrpt", a line of text for
// people and the gzip'd JSON as an application/tlsrpt+gzip attachment, with the
// TLS-Report-Domain and TLS-Report-Submitter header fields receivers sort by.
import { buildReportMessage } from "./reporting/report-message.ts";

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

/** The whole message, CRLF line ends, ready for core's submit(). */
export function buildReportMail(mail: ReportMail): Buffer {
  return buildReportMessage({
    from: mail.from,
    to: mail.to,
    date: mail.date,
    subject: `Report Domain: ${mail.policyDomain} Submitter: ${mail.submitter} Report-ID: <${mail.reportId}>`,
    messageIdDomain: mail.submitter,
    headers: [
      ["TLS-Report-Domain", mail.policyDomain],
      ["TLS-Report-Submitter", mail.submitter],
    ],
    multipartType: 'multipart/report; report-type="tlsrpt"',
    text: `This is an aggregate TLS report (RFC 8460) from ${mail.organizationName} about mail to ${mail.policyDomain}.`,
    attachment: { contentType: "application/tlsrpt+gzip", fileName: mail.fileName, bytes: mail.gzipped },
  });
}
