// The SMTP reply for an expansion that delivers nowhere, in one place (the plugin answers RCPT TO
// with it; a delivering expansion is accepted with its targets instead).
import { defer, reject, type Verdict } from "@postern/core";
import type { Expansion } from "./expansion.ts";

export function refusalFor(expansion: Expansion): Verdict | undefined {
  switch (expansion.kind) {
    case "deliver":
      return undefined;
    case "unknown":
      // Refused now, never accepted and bounced later (no backscatter).
      return reject("5.1.1", "No such user here");
    case "tempfail":
      // RFC 3463 X.3.0: our own system failed; the sender retries, nothing is lost or misrouted.
      return defer("4.3.0", "Recipient lookup failed, try again later");
    case "loop":
      // X.4.6: routing loop detected — the aliases send this address round in a circle.
      return reject("5.4.6", "Alias loop detected for this address");
    case "too-large":
      // X.2.4: mailing list expansion problem — more members or deeper nesting than allowed.
      return reject("5.2.4", "Alias or list expansion too large");
  }
}
