// What a milter's answer means for the SMTP client, in one place: its own reply code and text when
// it gave one (SMFIR_REPLYCODE), the usual replies otherwise, and the configured default action
// when the milter failed (as Postfix's milter_default_action).
import { defer, disconnect, type EnhancedStatus, reject, type Verdict } from "@postern/core";
import type { StageReply } from "./milter-session.ts";

export type DefaultAction = "tempfail" | "reject" | "accept";

/** Where the reply applies: a recipient is refused alone, everything else refuses the command. */
export type Stage = "connect" | "helo" | "mail" | "rcpt" | "data";

const replyTexts: Record<Stage, { reject: string; tempfail: string }> = {
  connect: { reject: "Connection refused by a mail filter", tempfail: "Connection deferred by a mail filter" },
  helo: { reject: "Refused by a mail filter", tempfail: "Deferred by a mail filter, try again later" },
  mail: { reject: "Sender refused by a mail filter", tempfail: "Sender deferred by a mail filter, try again later" },
  rcpt: {
    reject: "Recipient refused by a mail filter",
    tempfail: "Recipient deferred by a mail filter, try again later",
  },
  data: { reject: "Message refused by a mail filter", tempfail: "Message deferred by a mail filter, try again later" },
};

const enhancedStatus = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/**
 * A milter's own reply ("550 5.7.1 Virus found", possibly several lines) as a verdict: the code
 * is kept; the enhanced status too when it has the code's class, else 4.7.1/5.7.1 is used.
 */
export function replyCodeVerdict(code: number, text: string): Verdict {
  const klass = String(code)[0] as "4" | "5";
  // Multi-line replies come as "550-5.7.1 first\r\n550 5.7.1 second": one line of text here.
  const lines = text
    .split(/\r?\n/)
    .map((line, index) => (index === 0 ? line : line.replace(/^\d{3}[ -]/, "")))
    .map((line) => {
      const match = enhancedStatus.exec(line);
      return {
        status: match?.[1] === klass ? match[0].trim() : undefined,
        text: match ? line.slice(match[0].length) : line,
      };
    });
  const status = (lines[0]?.status ?? `${klass}.7.1`) as EnhancedStatus;
  const joined = lines
    .map((line) => line.text.trim())
    .filter(Boolean)
    .join(" ");
  const message = joined || (klass === "4" ? "Deferred by a mail filter" : "Refused by a mail filter");
  return klass === "4" ? defer(status, message, code) : reject(status, message, code);
}

/** The verdict for a milter's answer at `stage`, or undefined when the SMTP command goes on. */
export function stageVerdict(reply: StageReply, stage: Stage): Verdict | undefined {
  switch (reply.kind) {
    case "continue":
    case "accept":
    case "discard":
      return undefined;
    case "reject":
      return reject("5.7.1", replyTexts[stage].reject);
    case "tempfail":
      return defer("4.7.1", replyTexts[stage].tempfail);
    case "replyCode":
      return replyCodeVerdict(reply.code, reply.text);
    case "disconnect":
      return disconnect("4.7.0", "Closing connection at a mail filter's request");
  }
}

/** The verdict when a milter failed and its default action is not "accept". */
export function defaultActionVerdict(action: Exclude<DefaultAction, "accept">, stage: Stage): Verdict {
  return action === "reject"
    ? reject("5.7.1", `${replyTexts[stage].reject} (filter unavailable)`)
    : defer("4.7.1", "Mail filter unavailable, try again later");
}
