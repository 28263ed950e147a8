// Verdicts are how a hook answers. They are a tagged union built only by the helpers below, so a
// verdict is always explicit and always carries an RFC 3463 enhanced status code; the basic SMTP
// code is derived from that status unless given. `reply.ts` turns them into SMTP replies.

/** An RFC 3463 enhanced status code such as "5.7.1". */
export type EnhancedStatus = `${2 | 4 | 5}.${number}.${number}`;

/** One address a recipient resolves to (rcptTo: aliases, lists, forwarding). */
export interface Expansion {
  readonly address: string;
  /** The route that delivers this address ("local", "relay" or a custom name). */
  readonly route: string;
  /** The subaddress detail split off on the way ("news" for alice+news@…), for stores that file by it. */
  readonly detail?: string;
  /**
   * The envelope sender delivery uses for this address instead of the transaction's MAIL FROM —
   * the SRS form when forwarding, so SPF passes at the next hop.
   */
  readonly sender?: string;
}

export interface AcceptVerdict {
  readonly kind: "accept";
  /** rcptTo only: the route that claims the recipient ("local", "relay" or a custom name). */
  readonly route?: string;
  /**
   * rcptTo only: the recipient resolves to these addresses instead of itself, each with its own
   * route (an alias, a list, a forward). Core collapses duplicates, bounds the size
   * (`limits.maxExpansion`) and keeps the address given at RCPT TO as each one's `original`.
   */
  readonly expand?: readonly Expansion[];
  /** Optional text for the 2xx reply. */
  readonly text?: string;
}

/** data only: answer 250 and store nothing (the milter "discard" action). */
export interface DiscardVerdict {
  readonly kind: "discard";
  /** Why, for the logs and observers; the client is told only "queued". */
  readonly reason: string;
}

export interface RefusalVerdict<Kind extends "reject" | "defer" | "disconnect"> {
  readonly kind: Kind;
  readonly status: EnhancedStatus;
  readonly code: number;
  readonly text: string;
}

export type RejectVerdict = RefusalVerdict<"reject">;
export type DeferVerdict = RefusalVerdict<"defer">;
export type DisconnectVerdict = RefusalVerdict<"disconnect">;
export type Verdict = AcceptVerdict | RejectVerdict | DeferVerdict | DisconnectVerdict;
/** A verdict that refuses: what becomes a 4xx/5xx reply. */
export type Refusal = RejectVerdict | DeferVerdict | DisconnectVerdict;

const statusPattern = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

/** The basic code an enhanced status implies when the hook gives none. */
function defaultCode(status: EnhancedStatus): number {
  const [klass, subject, detail] = status.split(".").map(Number) as [number, number, number];
  if (klass === 2) return 250;
  if (klass === 4) {
    if (subject === 7 && detail === 0) return 421;
    if (subject === 5 && detail === 3) return 452;
    if (subject === 2 || subject === 1) return 450;
    return 451;
  }
  if (subject === 1) return 550;
  if (subject === 3 && detail === 4) return 552;
  if (subject === 5) return detail === 2 ? 500 : 501;
  if (subject === 7 && detail === 8) return 535;
  if (subject === 6) return 554;
  return 550;
}

function refusal<Kind extends "reject" | "defer" | "disconnect">(
  kind: Kind,
  expectedClass: "4" | "5" | "4 or 5",
  status: EnhancedStatus,
  text: string,
  code?: number,
): RefusalVerdict<Kind> {
  const match = statusPattern.exec(status);
  if (!match || !expectedClass.includes(match[1]!)) {
    throw new TypeError(`${kind}(): "${status}" is not a ${expectedClass}.x.x enhanced status code`);
  }
  const basic = code ?? defaultCode(status);
  if (String(basic)[0] !== match[1]) {
    throw new TypeError(`${kind}(): reply code ${basic} does not match enhanced status ${status}`);
  }
  // A reply line must not be split by the text; hooks often build it from client input.
  return { kind, status, code: basic, text: text.replace(/[\r\n\0]+/g, " ") };
}

export function accept(options: { route?: string; expand?: readonly Expansion[]; text?: string } = {}): AcceptVerdict {
  return { kind: "accept", ...options };
}

/** data hooks only: the client is told the message was queued, and nothing is stored. */
export function discard(reason = "discarded by policy"): DiscardVerdict {
  return { kind: "discard", reason: reason.replace(/[\r\n\0]+/g, " ") };
}

/** A permanent refusal (5xx): the client must not retry. */
export function reject(status: EnhancedStatus, text: string, code?: number): RejectVerdict {
  return refusal("reject", "5", status, text, code);
}

/** A temporary refusal (4xx): the client should retry later. */
export function defer(status: EnhancedStatus, text: string, code?: number): DeferVerdict {
  return refusal("defer", "4", status, text, code);
}

/** Refuse and close the connection (421 by default for 4.x.x, 554 for 5.x.x). */
export function disconnect(status: EnhancedStatus, text: string, code?: number): DisconnectVerdict {
  const basic = code ?? (status.startsWith("4") ? 421 : 554);
  return refusal("disconnect", "4 or 5", status, text, basic);
}

export function isVerdict(value: unknown): value is Verdict | DiscardVerdict {
  if (typeof value !== "object" || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return kind === "accept" || kind === "reject" || kind === "defer" || kind === "disconnect" || kind === "discard";
}
