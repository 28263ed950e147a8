// The one Authentication-Results field (RFC 8601) Postern's authentication plugins add. Each
// plugin records its resinfo entries under one shared result key and then rewrites the field from
// everything recorded so far, so whichever of spf, dkim and dmarc (or a plugin of yours: iprev,
// bimi …) are configured, and in whatever order, the message ends up with exactly one field holding
// all of them. Incoming fields that claim our authserv-id were already removed by core before any
// plugin ran (RFC 8601 §5), so a field with our authserv-id is always one we wrote.
import type { Message } from "./message.ts";
import { resultKey } from "./result-key.ts";
import type { Transaction } from "./session.ts";

/** The methods Postern's plugins report, in the order they appear in the field. */
export const authMethods = ["iprev", "auth", "spf", "dkim", "dmarc", "arc"] as const;
export type AuthMethod = (typeof authMethods)[number] | (string & {});

export interface AuthResultEntry {
  readonly method: AuthMethod;
  /** One resinfo as RFC 8601 §2.2 writes it, e.g. "spf=pass smtp.mailfrom=example.org". */
  readonly text: string;
  /** The result keyword ("pass", "fail" …), for plugins that build on it (DMARC reads SPF's and DKIM's). */
  readonly result?: string;
  /** The properties (RFC 8601 §2.3), e.g. { "smtp.mailfrom": "example.org" }, { "header.d": "example.org" }. */
  readonly properties?: Readonly<Record<string, string>>;
}

/** Every resinfo recorded for the transaction, in the order recorded. */
export const authResults = resultKey<readonly AuthResultEntry[]>("authentication-results");

/** Records the entries of one method (text, or text with its result and properties), replacing any it recorded before. */
export function recordAuthResults(
  transaction: Transaction,
  method: AuthMethod,
  entries: readonly (string | Omit<AuthResultEntry, "method">)[],
): void {
  const others = (transaction.results.get(authResults) ?? []).filter((entry) => entry.method !== method);
  const recorded = entries.map((entry) => (typeof entry === "string" ? { method, text: entry } : { method, ...entry }));
  transaction.results.set(authResults, [...others, ...recorded]);
}

/** The entries one method recorded (e.g. "spf"), in order. */
export function authResultsOf(transaction: Transaction, method: AuthMethod): readonly AuthResultEntry[] {
  return (transaction.results.get(authResults) ?? []).filter((entry) => entry.method === method);
}

const rank = (method: AuthMethod) => {
  const index = (authMethods as readonly string[]).indexOf(method);
  return index === -1 ? authMethods.length : index;
};

/** The field value for the recorded entries: `authserv-id; entry; entry`, or `authserv-id; none`. */
export function authResultsValue(transaction: Transaction, authservId: string): string {
  const entries = [...(transaction.results.get(authResults) ?? [])].sort((a, b) => rank(a.method) - rank(b.method));
  if (entries.length === 0) return `${authservId}; none`;
  // A line break before each resinfo keeps long results readable and under the line limits.
  return `${authservId};${entries.map((entry) => `\r\n\t${entry.text.replace(/\r?\n(?=[ \t])/g, "\r\n")}`).join(";")}`;
}

/**
 * The authserv-id an Authentication-Results value starts with, lower-cased, without a trailing
 * dot: a token or a quoted string, after any comments (CFWS). Undefined when the value has none.
 */
export function authservIdOf(value: string): string | undefined {
  let rest = value;
  for (;;) {
    rest = rest.replace(/^[ \t\r\n]+/, "");
    if (!rest.startsWith("(")) break;
    let depth = 0;
    let end = -1;
    for (let index = 0; index < rest.length; index++) {
      const char = rest[index];
      if (char === "\\") index++;
      else if (char === "(") depth++;
      else if (char === ")" && --depth === 0) {
        end = index;
        break;
      }
    }
    if (end === -1) return undefined;
    rest = rest.slice(end + 1);
  }
  let id: string | undefined;
  if (rest.startsWith('"')) {
    const quoted = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
    id = quoted ? quoted[1]!.replace(/\\(.)/g, "$1") : undefined;
  } else {
    // RFC 2045 token: anything but SPACE, CTLs and tspecials.
    id = /^[^\s()<>@,;:\\"/[\]?=]+/.exec(rest)?.[0];
  }
  return id?.toLowerCase().replace(/\.$/, "");
}

/** Removes the Authentication-Results fields that claim `authservId`. Returns how many. */
export function removeAuthResultsOf(message: Message, authservId: string): number {
  const ours = authservId.toLowerCase().replace(/\.$/, "");
  return message.removeHeader(
    (field) => field.name.toLowerCase() === "authentication-results" && authservIdOf(field.value) === ours,
  );
}

/**
 * Writes the transaction's one Authentication-Results field on top of the message, replacing the
 * one written before. Nothing is written when no method recorded anything (e.g. every check
 * skipped authenticated mail).
 */
export function writeAuthenticationResults(transaction: Transaction, message: Message, authservId: string): void {
  removeAuthResultsOf(message, authservId);
  if ((transaction.results.get(authResults) ?? []).length === 0) return;
  message.prepend("Authentication-Results", authResultsValue(transaction, authservId));
}
