// Delivery status notifications (RFC 3464): a multipart/report with a human-readable part, the
// machine-readable message/delivery-status, and the original message (or its header) so the
// sender can tell which message failed. Sent from the null sender (RFC 5321 §6.1, §4.5.5), which
// is why a report that fails itself never produces another.
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import type { DeliveryReply, MessageEnvelope } from "./queue/store.ts";

/**
 * RFC 3464 §2.3.3 actions: "failed" (a bounce), "delayed" (a warning, delivery goes on),
 * "delivered" (stored in a mailbox here), "relayed" (handed to a next hop that does not offer DSN,
 * so no further report can be asked for).
 */
export type DsnAction = "failed" | "delayed" | "delivered" | "relayed";

export interface DsnRecipient {
  readonly address: string;
  /** ORCPT as given ("rfc822;user@example.com"). */
  readonly orcpt?: string | undefined;
  readonly action: DsnAction;
  readonly reply: DeliveryReply;
  readonly lastAttemptAt: Date;
  /** "delayed": until when delivery goes on being tried (Will-Retry-Until). */
  readonly willRetryUntil?: Date | undefined;
}

export interface DsnInput {
  /** Our host name (Reporting-MTA, From: domain). */
  readonly hostname: string;
  /** Local part of the From: address. */
  readonly fromLocalPart: string;
  readonly message: MessageEnvelope;
  readonly recipients: readonly DsnRecipient[];
  /** The original message, or only its header block when `headersOnly`; none for a report without it. */
  readonly original: Buffer | undefined;
  readonly headersOnly: boolean;
  readonly now?: Date;
}

/** RFC 5322 date-time. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, "+0000");
}

/** Whether any byte is outside US-ASCII (then the part needs 8bit, and the message 8BITMIME). */
export const has8bit = (bytes: Buffer | string): boolean =>
  (typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes).some((byte) => byte > 0x7f);

/** Remote-MTA wants the host name alone: "mx.example.com [192.0.2.1]:2525" → "mx.example.com". */
function remoteName(remote: string): string {
  return (remote.split(/\s+/)[0] ?? remote).replace(/:\d+$/, "");
}

/** A DSN field value may not contain line breaks. */
const oneLine = (text: string) => text.replace(/[\r\n]+/g, " ").trim();

/** RFC 6533 §3: an address with UTF-8 is typed "utf-8", and needs the message/global-* parts. */
const addressType = (address: string) => (has8bit(address) ? "utf-8" : "rfc822");

const subjects: Record<DsnAction, string> = {
  failed: "Undelivered Mail Returned to Sender",
  delayed: "Delayed Mail (still being retried)",
  delivered: "Successful Mail Delivery Report",
  relayed: "Successful Mail Relay Report",
};

const summaries: Record<DsnAction, string> = {
  failed: "Your message could not be delivered to one or more recipients. It is attached below.",
  delayed: "Your message has not been delivered yet to one or more recipients; delivery will be retried.",
  delivered: "Your message was delivered to the mailbox of the recipients below (you asked to be told).",
  relayed:
    "Your message was handed to the next mail system for the recipients below, which does not send delivery reports: this is the last report you will get for them.",
};

export function buildDsn(input: DsnInput): Buffer {
  const now = input.now ?? new Date();
  const { message, hostname } = input;
  // The most serious action names the report: a failure, else a delay, else a success.
  const actions = new Set(input.recipients.map((recipient) => recipient.action));
  const main: DsnAction = (["failed", "delayed", "delivered", "relayed"] as const).find((action) =>
    actions.has(action),
  )!;
  const international =
    has8bit(message.from) ||
    input.recipients.some((recipient) => has8bit(recipient.address) || has8bit(recipient.orcpt ?? ""));
  const boundary = `=_postern_${randomBytes(12).toString("hex")}`;
  const crlf = (text: string) => text.replace(/\r?\n/g, "\r\n");

  const explanation = [
    `This is the mail system at host ${hostname}.`,
    "",
    summaries[main],
    "",
    "For further assistance, please contact your postmaster and include this report.",
    "",
    ...input.recipients.map((recipient) => {
      const where = recipient.reply.remote ? `host ${recipient.reply.remote} said: ` : "";
      return `<${recipient.address}>: ${where}${recipient.reply.code} ${recipient.reply.status} ${oneLine(recipient.reply.text)}`;
    }),
    "",
  ].join("\n");

  const perMessage = [
    `Reporting-MTA: dns; ${hostname}`,
    ...(message.dsn?.envid ? [`Original-Envelope-Id: ${oneLine(message.dsn.envid)}`] : []),
    `Arrival-Date: ${rfc5322Date(new Date(message.createdAt))}`,
  ];
  const perRecipient = input.recipients.map((recipient) =>
    [
      `Final-Recipient: ${addressType(recipient.address)}; ${recipient.address}`,
      ...(recipient.orcpt ? [`Original-Recipient: ${oneLine(recipient.orcpt)}`] : []),
      `Action: ${recipient.action}`,
      `Status: ${recipient.reply.status}`,
      ...(recipient.reply.remote ? [`Remote-MTA: dns; ${remoteName(recipient.reply.remote)}`] : []),
      `Diagnostic-Code: smtp; ${recipient.reply.code} ${recipient.reply.status} ${oneLine(recipient.reply.text)}`,
      `Last-Attempt-Date: ${rfc5322Date(recipient.lastAttemptAt)}`,
      ...(recipient.willRetryUntil ? [`Will-Retry-Until: ${rfc5322Date(recipient.willRetryUntil)}`] : []),
    ].join("\n"),
  );
  const status = [perMessage.join("\n"), ...perRecipient].join("\n\n");

  const head = [
    `From: Mail Delivery System <${input.fromLocalPart}@${hostname}>`,
    `To: <${message.from}>`,
    `Subject: ${subjects[main]}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${now.getTime().toString(36)}.${randomBytes(6).toString("hex")}@${hostname}>`,
    // RFC 3834: an automatic reply; RFC 3464 §2: the report is for the sender, not for auto-responders.
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="${boundary}"`,
    "",
    "This is a MIME-encapsulated message.",
    "",
    `--${boundary}`,
    "Content-Description: Notification",
    "Content-Type: text/plain; charset=utf-8",
    `Content-Transfer-Encoding: ${has8bit(explanation) ? "8bit" : "7bit"}`,
    "",
    explanation,
    `--${boundary}`,
    "Content-Description: Delivery report",
    // RFC 6533: reports naming UTF-8 addresses are message/global-delivery-status (8bit).
    `Content-Type: ${international ? "message/global-delivery-status" : "message/delivery-status"}`,
    ...(international ? ["Content-Transfer-Encoding: 8bit"] : []),
    "",
    status,
    "",
    "",
  ].join("\n");
  if (!input.original) return Buffer.from(crlf(`${head}--${boundary}--\n`), "utf8");
  const returned = [
    `--${boundary}`,
    `Content-Description: ${input.headersOnly ? "Message headers" : "Undelivered message"}`,
    `Content-Type: ${returnedType(input.headersOnly, international)}`,
    ...(has8bit(input.original) ? ["Content-Transfer-Encoding: 8bit"] : []),
    "",
    "",
  ].join("\n");
  const original = input.original.toString("latin1").replace(/\r?\n/g, "\r\n");
  const tail = `${original.endsWith("\r\n") ? "" : "\r\n"}\r\n--${boundary}--\r\n`;
  return Buffer.concat([Buffer.from(crlf(head + returned), "utf8"), Buffer.from(original + tail, "latin1")]);
}

/** The returned part's type: RFC 6533's message/global* when the report names UTF-8 addresses. */
function returnedType(headersOnly: boolean, international: boolean): string {
  if (headersOnly) return international ? "message/global-headers" : "text/rfc822-headers";
  return international ? "message/global" : "message/rfc822";
}

/** Reads the original back for a report: the header block, or the whole message when small enough. */
export async function readOriginal(
  body: Readable,
  options: { headersOnly: boolean; maxSize: number },
): Promise<{ bytes: Buffer; headersOnly: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let headersOnly = options.headersOnly;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (headersOnly || size > options.maxSize) {
        const joined = Buffer.concat(chunks);
        const end = joined.indexOf("\r\n\r\n");
        if (end !== -1) return { bytes: joined.subarray(0, end + 2), headersOnly: true };
        // Keep reading until the header block ends, but never keep more than 1 MiB of it.
        if (size > 1024 * 1024) return { bytes: joined.subarray(0, 1024 * 1024), headersOnly: true };
        headersOnly = true;
      }
    }
  } finally {
    body.destroy();
  }
  const all = Buffer.concat(chunks);
  if (!headersOnly) return { bytes: all, headersOnly: false };
  const end = all.indexOf("\r\n\r\n");
  return { bytes: end === -1 ? all : all.subarray(0, end + 2), headersOnly: true };
}
