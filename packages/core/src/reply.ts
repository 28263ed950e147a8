// Every reply core sends itself, in one table with its enhanced status code (RFC 3463), and the
// one place where verdicts become SMTP replies. Replies to commands smtp-server answers on its own
// (syntax errors, sequence errors it catches, SIZE at MAIL FROM) are smtp-server's, tested in
// protocol.test.ts.
import type { RefusalVerdict } from "./verdict.ts";

export interface SmtpReply {
  readonly code: number;
  /** The reply text, starting with the enhanced status code. */
  readonly message: string;
  /** Close the connection after this reply. */
  readonly close: boolean;
}

const reply = (code: number, message: string, close = false): SmtpReply => ({ code, message, close });

export const coreReplies = {
  // Defaults of the contract when every plugin returned nothing.
  /** auth: nobody accepted the credentials. */
  authRefused: reply(535, "5.7.8 Authentication credentials invalid"),
  /** rcptTo: nobody claimed the recipient — no open relay. */
  relayDenied: reply(550, "5.7.1 Relaying denied: no route for this recipient"),
  /** queue: no storage plugin made the message durable — never acknowledge it. */
  notStored: reply(451, "4.3.0 Message not stored, try again later"),

  // Failing plugins: closed, never open.
  hookFailed: reply(451, "4.3.0 Temporary local problem, try again later"),
  hookTimedOut: reply(451, "4.4.3 Timeout while checking the message, try again later"),

  // The message itself.
  tooBig: reply(552, "5.3.4 Message exceeds the maximum message size"),
  bareNewline: reply(554, "5.6.0 Bare CR or LF in message; lines must end with CRLF (RFC 5321 2.3.8)"),
  lineTooLong: reply(554, "5.6.0 Message line longer than 998 octets (RFC 5322 2.1.1)"),
  nulByte: reply(554, "5.6.0 NUL character in message (RFC 5322 2.3)"),
  tooManyHops: reply(554, "5.4.6 Too many Received header fields: mail loop?"),
  expansionTooLarge: reply(550, "5.5.3 Recipient expands to too many addresses"),

  storageFull: reply(452, "4.3.1 Insufficient system storage, try again later"),

  // Commands.
  unknownParameter: reply(555, "5.5.4 Parameter not recognized"),
  badParameterSyntax: reply(501, "5.5.4 Bad parameter syntax"),
  utf8NeedsSmtputf8: reply(553, "5.6.7 Non-ASCII address requires SMTPUTF8 (RFC 6531)"),
  badSenderSyntax: reply(553, "5.1.7 Bad sender address syntax"),
  badRecipientSyntax: reply(501, "5.1.3 Bad recipient address syntax"),

  // Sequence and session.
  badSequence: reply(503, "5.5.1 Bad sequence of commands"),
  needMail: reply(503, "5.5.1 Need MAIL command"),
  shuttingDown: reply(421, "4.3.2 Server shutting down", true),
  sessionTooLong: reply(421, "4.4.2 Session lasted too long, closing", true),
  dataTooSlow: reply(421, "4.4.2 Message data arrived too slowly, closing", true),
  encryptionRequired: reply(538, "5.7.11 Encryption required: issue STARTTLS before AUTH"),
} as const satisfies Record<string, SmtpReply>;

export type CoreReplyName = keyof typeof coreReplies;

/** The greeting refusal when a listener is full; it names the server. */
export function tooManyClients(hostname: string): SmtpReply {
  return reply(421, `4.7.0 ${hostname} Too many connected clients, try again in a moment`, true);
}

/** The reply to an accepted message. */
export function queued(queueId: string): string {
  return `2.0.0 Ok: queued as ${queueId}`;
}

export function replyFor(verdict: RefusalVerdict<"reject" | "defer" | "disconnect">): SmtpReply {
  return { code: verdict.code, message: `${verdict.status} ${verdict.text}`, close: verdict.kind === "disconnect" };
}

/** An Error in the shape smtp-server's callbacks take (responseCode + message). */
export function replyError(reply: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}
