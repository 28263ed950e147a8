// From rspamd's reply to what happens to the message: Postern's answer to the action rspamd
// recommends (the operator's `actions`), and — when the message is kept — rspamd's changes applied
// through core's rewriting API in the order rspamd's own milter applies them: fields removed, fields
// added, recipients and sender, DKIM signatures, then what the answer itself writes (the Subject,
// the spam header). The only module that edits the message or the envelope.
import {
  type DiscardVerdict,
  defer,
  discard,
  type HeaderField,
  type Message,
  reject,
  type Transaction,
  type Verdict,
} from "@postern/core";
import type { ActionPolicy, ResolvedActions } from "./options.ts";
import type { MilterBlock, RspamdAction, RspamdReply } from "./reply.ts";

export type DataVerdict = Verdict | DiscardVerdict;

/** What Postern did with rspamd's action: the operator's answer, or "noAction" (rspamd's milter no_action). */
export type AppliedAnswer = ActionPolicy | "noAction";

export interface ReplyOutcome {
  readonly verdict: DataVerdict | undefined;
  readonly answer: AppliedAnswer;
  /** Changes rspamd asked for that could not be applied (e.g. a recipient nobody claims), for the log. */
  readonly problems: readonly string[];
}

export interface ApplySettings {
  readonly actions: ResolvedActions;
  readonly spamHeader: { readonly name: string; readonly value: string };
  readonly subject: string;
}

const actionKey: Record<RspamdAction, keyof ResolvedActions> = {
  reject: "reject",
  "soft reject": "softReject",
  "rewrite subject": "rewriteSubject",
  "add header": "addHeader",
  greylist: "greylist",
  "no action": "noAction",
  discard: "discard",
  quarantine: "quarantine",
};

/** rspamd's milter uses these texts when rspamd gives none. */
const defaultTexts = { reject: "Spam message rejected", defer: "Try again later" };

/** A reply line has room for about 500 octets; rspamd's message is cut well before that. */
function replyText(text: string | undefined, fallback: string): string {
  const flat = (text ?? fallback).replace(/\p{Cc}+/gu, " ").trim();
  return flat.length > 400 ? `${flat.slice(0, 399)}…` : flat || fallback;
}

export function answerFor(reply: RspamdReply, actions: ResolvedActions): AppliedAnswer {
  if (reply.milter?.noAction) return "noAction";
  const answer = actions[actionKey[reply.action]];
  // rspamd's milter turns a reject into a discard or a quarantine when its milter block says so.
  if (answer === "reject" && reply.milter?.rejectAs) return reply.milter.rejectAs;
  return answer;
}

export async function applyReply(
  reply: RspamdReply,
  transaction: Transaction,
  message: Message,
  settings: ApplySettings,
): Promise<ReplyOutcome> {
  const answer = answerFor(reply, settings.actions);
  const summary = `${reply.action}, score ${reply.score.toFixed(2)} / ${reply.requiredScore.toFixed(2)}`;
  switch (answer) {
    case "reject":
      return { verdict: reject("5.7.1", replyText(reply.smtpMessage, defaultTexts.reject), 550), answer, problems: [] };
    case "defer":
      return { verdict: defer("4.7.1", replyText(reply.smtpMessage, defaultTexts.defer), 451), answer, problems: [] };
    case "discard":
      return { verdict: discard(`rspamd: ${summary}`), answer, problems: [] };
  }

  const problems: string[] = [];
  const refusedRecipient = reply.milter ? await applyMilterBlock(reply.milter, transaction, message, problems) : false;
  // rspamd's milter inserts signatures from the top, first signature first.
  for (const [index, signature] of reply.dkimSignatures.entries())
    message.insertHeader(index, "DKIM-Signature", signature);

  switch (answer) {
    case "noAction":
      message.addHeader("X-Rspamd-Action", reply.action);
      break;
    case "rewriteSubject": {
      const old = message.headers.get("Subject") ?? "";
      message.changeHeader("Subject", 1, reply.subject ?? settings.subject.replaceAll("%s", old));
      break;
    }
    case "addHeader":
      setSpamHeader(message, reply.milter, settings.spamHeader);
      break;
    case "quarantine":
      transaction.quarantine(`rspamd: ${summary}`);
      break;
    case "accept":
      break;
  }
  // A recipient rspamd added that nobody claims: like a milter's, the message waits (451).
  const verdict = refusedRecipient ? defer("4.7.1", "Message could not be filtered, try again later", 451) : undefined;
  return { verdict, answer, problems };
}

async function applyMilterBlock(
  block: MilterBlock,
  transaction: Transaction,
  message: Message,
  problems: string[],
): Promise<boolean> {
  let refusedRecipient = false;
  for (const { name, occurrence } of block.removeHeaders) {
    if (occurrence === 0) {
      message.removeHeader(name);
      continue;
    }
    // A negative occurrence counts from the end: -1 is the last field of that name.
    const count = message.headers.getAll(name).length;
    const nth = occurrence > 0 ? occurrence : count + occurrence + 1;
    if (nth >= 1 && nth <= count) message.removeHeader(name, nth);
  }
  for (const { name, value, order } of block.addHeaders) {
    if (order === undefined) message.addHeader(name, value);
    else if (order >= 0) message.insertHeader(order, name, value);
    // A negative order counts from the end of the header section (-1: after the last field).
    else message.insertHeader(Math.max(0, message.headers.length + order + 1), name, value);
  }
  for (const address of block.addRecipients) {
    const added = await transaction.addRecipient(address);
    if (added.ok) continue;
    refusedRecipient = true;
    problems.push(`the recipient ${address} rspamd added was refused (${added.refusal.code} ${added.refusal.text})`);
  }
  for (const address of block.removeRecipients) transaction.removeRecipient(address);
  if (block.changeFrom !== undefined) transaction.changeSender(block.changeFrom);
  return refusedRecipient;
}

function setSpamHeader(
  message: Message,
  block: MilterBlock | undefined,
  configured: { readonly name: string; readonly value: string },
): void {
  const wanted = block?.spamHeader;
  const fields: [string, string][] =
    wanted === undefined
      ? [[configured.name, configured.value]]
      : typeof wanted === "string"
        ? [[configured.name, wanted]]
        : Object.entries(wanted);
  for (const [name, value] of fields) {
    // One field only: a client's own X-Spam must not stand beside ours.
    message.removeHeader(name);
    message.addHeader(name, value);
  }
}

/** Removes fields named `name` that this server did not write (a client's forged score header). */
export function removeForeign(message: Message, name: string): number {
  const lower = name.toLowerCase();
  const ours = new Set<HeaderField>(message.added);
  return message.removeHeader((field) => field.name.toLowerCase() === lower && !ours.has(field));
}
