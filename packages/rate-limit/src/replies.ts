// The replies of this plugin, in one place. Connection-level limits answer 421 and close;
// transaction-level limits 451 4.7.1; too many recipients for one message 452 4.5.3 (RFC 5321
// §4.5.3.1.10: the client sends the accepted ones and the rest in a later transaction).
import { type DeferVerdict, type DisconnectVerdict, defer, disconnect } from "@postern/core";
import type { LimitKind } from "./options.ts";

const refusalText: Record<LimitKind, string> = {
  concurrent: "Too many connections from your address, try again later",
  connections: "Too many connections from your address in a short time, try again later",
  authFailures: "Too many failed authentication attempts, try again later",
  messages: "Message rate limit exceeded, try again later",
  recipients: "Recipient rate limit exceeded, try again later",
  recipientsPerMessage: "Too many recipients for one message, send the rest in another",
  bytes: "Data volume limit exceeded, try again later",
};

/** The reply when a limit of `kind` is reached. */
export function refusal(kind: LimitKind): DeferVerdict | DisconnectVerdict {
  switch (kind) {
    case "concurrent":
    case "connections":
    case "authFailures":
      return disconnect("4.7.0", refusalText[kind]);
    case "recipientsPerMessage":
      return defer("4.5.3", refusalText[kind]);
    default:
      return defer("4.7.1", refusalText[kind]);
  }
}

export type Stage = "connect" | "auth" | "mailFrom" | "rcptTo" | "data";

/** The reply when limits cannot be checked and onError is "defer". */
export function storeUnavailable(stage: Stage): DeferVerdict | DisconnectVerdict {
  const text = "Cannot check sending limits right now, try again later";
  if (stage === "connect") return disconnect("4.7.1", text);
  // RFC 4954 §6: 454 4.7.0 is the temporary failure of AUTH.
  if (stage === "auth") return defer("4.7.0", "Temporary authentication failure, try again later", 454);
  return defer("4.7.1", text);
}
