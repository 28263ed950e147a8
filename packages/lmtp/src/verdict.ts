// One SMTP reply for a message whose LMTP delivery answered per recipient. The rule, in order:
//
//   every recipient delivered (now or on an earlier attempt)   → accept
//   any recipient failed temporarily                           → defer (its 4.x.x); those delivered
//                                                                are remembered, so the retry
//                                                                reaches only the others
//   only permanent failures, nobody delivered                  → reject (the first 5.x.x)
//   permanent failures, some recipients delivered              → reject, naming who got it
//
// The last case has no clean answer in SMTP, which has one reply per DATA. Accepting would drop
// the failed recipients without a bounce (lost mail); rejecting makes the sender bounce for every
// recipient, including those who have the message — a misleading bounce, but nothing is lost, and
// the reply text says who was delivered.
import { accept, defer, type EnhancedStatus, reject, type Verdict } from "@postern/core";
import type { RecipientOutcome } from "./lmtp-client.ts";

type Failure = Extract<RecipientOutcome, { kind: "temporary" | "permanent" }>;

function status(failure: Failure, klass: "4" | "5", fallback: EnhancedStatus): EnhancedStatus {
  return failure.status?.startsWith(`${klass}.`) ? (failure.status as EnhancedStatus) : fallback;
}

function describe(failure: Failure): string {
  return `<${failure.recipient}>: ${failure.reply}`;
}

export function combineOutcomes(outcomes: readonly RecipientOutcome[], alreadyDelivered: readonly string[]): Verdict {
  const delivered = [
    ...alreadyDelivered,
    ...outcomes.filter((outcome) => outcome.kind === "delivered").map((outcome) => outcome.recipient),
  ];
  const temporary = outcomes.filter((outcome): outcome is Failure => outcome.kind === "temporary");
  const permanent = outcomes.filter((outcome): outcome is Failure => outcome.kind === "permanent");
  const deliveredNote = delivered.length > 0 ? `; delivered to ${delivered.map((r) => `<${r}>`).join(", ")}` : "";

  if (temporary.length === 0 && permanent.length === 0) return accept();
  if (temporary.length > 0) {
    const first = temporary[0]!;
    const retryNote = delivered.length > 0 ? "; a retry goes only to the others" : "";
    return defer(status(first, "4", "4.3.0"), `Delivery failed for now ${describe(first)}${deliveredNote}${retryNote}`);
  }
  const first = permanent[0]!;
  const others = permanent.length > 1 ? ` (and ${permanent.length - 1} more)` : "";
  return reject(status(first, "5", "5.0.0"), `Delivery failed ${describe(first)}${others}${deliveredNote}`);
}
