// The one place where verdicts become SMTP replies.
import type { Verdict } from "./verdict.ts";

export interface SmtpReply {
  code: number;
  /** The reply text, starting with the enhanced status code. */
  message: string;
  /** Close the connection after this reply. */
  close: boolean;
}

export function replyFor(verdict: Exclude<Verdict, { kind: "accept" }>): SmtpReply {
  return {
    code: verdict.code,
    message: `${verdict.status} ${verdict.text}`,
    close: verdict.kind === "disconnect",
  };
}

/** An Error in the shape smtp-server's callbacks take (responseCode + message). */
export function replyError(reply: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

/** Defaults used when every plugin returns nothing. */
export const defaultReplies = {
  auth: { code: 535, message: "5.7.8 Authentication credentials invalid", close: false },
  rcptTo: { code: 550, message: "5.7.1 Relaying denied: no route for this recipient", close: false },
  queue: { code: 451, message: "4.3.0 Message not stored, try again later", close: false },
} as const satisfies Record<string, SmtpReply>;
