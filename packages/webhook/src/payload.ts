// The JSON body: the parsed message (mailparser), the SMTP envelope, facts about the session and the
// authentication results. Authentication results are taken only from header fields Postern itself
// prepended (by @postern/spf, dkim, dmarc …): fields of the same name inside the message come from
// the sender and prove nothing.
import type { Message, RouteGroup, Transaction } from "@postern/core";
import { type AddressObject, type ParsedMail, simpleParser } from "mailparser";

export interface WebhookAddress {
  name: string;
  address: string | null;
  group?: WebhookAddress[];
}

export interface WebhookAttachment {
  filename: string | null;
  contentType: string;
  size: number;
  contentId: string | null;
  disposition: string | null;
  /** MD5 of the content, as mailparser computes it. */
  checksum: string | null;
  /** Base64, unless the plugin runs with attachments: "omit". */
  content?: string;
}

/** The body of a JSON webhook request (format "json"). */
export interface WebhookPayload {
  queueId: string;
  receivedAt: string;
  envelope: { mailFrom: string; recipients: string[]; route: string };
  session: {
    remoteAddress: string;
    clientHostname: string | null;
    helo: string | null;
    tls: { protocol: string; cipher: string } | null;
    authenticatedUser: string | null;
  };
  /** Header fields Postern prepended (trace and authentication), newest first. */
  prepended: { name: string; value: string }[];
  /** Values of the Authentication-Results fields Postern wrote. */
  authenticationResults: string[];
  message: {
    size: number;
    messageId: string | null;
    subject: string | null;
    date: string | null;
    from: WebhookAddress[];
    to: WebhookAddress[];
    cc: WebhookAddress[];
    replyTo: WebhookAddress[];
    inReplyTo: string | null;
    references: string[];
    /** Every header field of the message, in order, unfolded. */
    headers: { name: string; value: string }[];
    text: string | null;
    html: string | null;
    attachments: WebhookAttachment[];
  };
}

function addresses(header: AddressObject | AddressObject[] | undefined): WebhookAddress[] {
  const list = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const convert = (entry: { name: string; address?: string; group?: (typeof entry)[] }): WebhookAddress => ({
    name: entry.name,
    address: entry.address ?? null,
    ...(entry.group ? { group: entry.group.map(convert) } : {}),
  });
  return list.flatMap((object) => object.value.map(convert));
}

export async function buildPayload(
  transaction: Transaction,
  message: Message,
  group: RouteGroup,
  attachments: "inline" | "omit",
): Promise<WebhookPayload> {
  // keepCidLinks: cid: images stay links to the attachments instead of a second copy as data: URLs.
  const parsed: ParsedMail = await simpleParser(message.stream(), {
    keepCidLinks: true,
    skipTextToHtml: true,
    skipImageLinks: true,
  });
  const added = new Set(message.added);
  const prepended = message.added.map((field) => ({ name: field.name, value: field.value }));
  const session = transaction.session;
  const references = parsed.references === undefined ? [] : [parsed.references].flat();
  return {
    queueId: transaction.id,
    receivedAt: new Date().toISOString(),
    envelope: {
      mailFrom: transaction.mailFrom.address,
      recipients: group.recipients.map((recipient) => recipient.address),
      route: group.route,
    },
    session: {
      remoteAddress: session.remoteAddress,
      clientHostname: session.clientHostname ?? null,
      helo: session.heloName ?? null,
      tls: session.tls ? { protocol: session.tls.protocol, cipher: session.tls.cipher } : null,
      authenticatedUser: session.user ?? null,
    },
    prepended,
    authenticationResults: prepended
      .filter((field) => field.name.toLowerCase() === "authentication-results")
      .map((field) => field.value),
    message: {
      size: message.size,
      messageId: parsed.messageId ?? null,
      subject: parsed.subject ?? null,
      date: parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date.toISOString() : null,
      from: addresses(parsed.from),
      to: addresses(parsed.to),
      cc: addresses(parsed.cc),
      replyTo: addresses(parsed.replyTo),
      inReplyTo: parsed.inReplyTo ?? null,
      references,
      // The message's own fields only, not those this server wrote.
      headers: message.headers.fields
        .filter((field) => !added.has(field))
        .map((field) => ({ name: field.name, value: field.value })),
      text: parsed.text ?? null,
      html: typeof parsed.html === "string" ? parsed.html : null,
      attachments: parsed.attachments.map((attachment) => ({
        filename: attachment.filename ?? null,
        contentType: attachment.contentType,
        size: attachment.size,
        contentId: attachment.cid ?? null,
        disposition: attachment.contentDisposition ?? null,
        checksum: attachment.checksum ?? null,
        ...(attachments === "inline" ? { content: attachment.content.toString("base64") } : {}),
      })),
    },
  };
}
