// Why a recipient is refused, and the one SMTP reply for each reason (the plugin answers RCPT TO
// with it; a delivering expansion is accepted with its targets instead).
import { defer, type Refusal, reject } from "@postern/core";
import type { Expansion } from "./expansion.ts";

export type RefusalReason =
  /** Nothing here by that name, or a local part that cannot name a mailbox. */
  | "unknown-user"
  /** A lookup on the way failed or timed out. */
  | "lookup-failed"
  /** Every branch of the expansion ended in a loop. */
  | "loop"
  /** More addresses or deeper nesting than `limits` allow. */
  | "too-large"
  | "address-literal"
  | "malformed";

export function refusalVerdict(reason: RefusalReason): Refusal {
  switch (reason) {
    case "unknown-user":
      // 5.1.1: the part left of "@" names no mailbox here (RFC 3463). Refused now, never
      // accepted and bounced later to a sender that is usually forged (no backscatter).
      return reject("5.1.1", "No such user here");
    case "lookup-failed":
      // X.3.0: our own system failed; the sender retries, nothing is lost or misrouted — never
      // an accept for someone unknown, never a 550 for someone known.
      return defer("4.3.0", "Recipient lookup failed, try again later");
    case "loop":
      // X.4.6: routing loop detected — the aliases send this address round in a circle.
      return reject("5.4.6", "Alias loop detected for this address");
    case "too-large":
      // X.2.4: mailing list expansion problem — more members or deeper nesting than allowed.
      return reject("5.2.4", "Alias or list expansion too large");
    case "address-literal":
      // user@[192.0.2.1] is valid syntax (RFC 5321 §4.1.3), so not a 501; the mailbox part may
      // be fine too, so not 5.1.1. What is refused is the destination *system*: Postern has no
      // mailboxes at address literals and does not relay to them — 5.1.2 says exactly that.
      return reject("5.1.2", "Address literals are not accepted here; use a domain name");
    case "malformed":
      // 501 is the reply for a syntax error in a command's argument (RFC 5321 §4.2.3), and
      // 5.1.3 is "bad destination mailbox address syntax" (RFC 3463). Not 550 5.1.1: that
      // would tell the sender the address is well-formed but unknown.
      return reject("5.1.3", "Bad destination mailbox address syntax", 501);
  }
}

/** Why an expansion that delivers nowhere is refused; undefined for one that delivers. */
export function refusalReason(expansion: Expansion): RefusalReason | undefined {
  switch (expansion.kind) {
    case "deliver":
      return undefined;
    case "unknown":
      return "unknown-user";
    case "tempfail":
      return "lookup-failed";
    case "loop":
      return "loop";
    case "too-large":
      return "too-large";
  }
}

/** The refusal for an expansion that delivers nowhere; undefined for one that delivers. */
export function refusalFor(expansion: Expansion): Refusal | undefined {
  const reason = refusalReason(expansion);
  return reason && refusalVerdict(reason);
}
