// The score and symbols as a header field, in the form of rspamd's own X-Spamd-Result (its
// milter_headers module): `default: False [1.20 / 15.00]; SYMBOL(1.00)[option,…]; …`, strongest
// symbols first, folded between symbols so no line runs past 78 characters where it can be helped.
import type { RspamdReply } from "./reply.ts";

const lineLimit = 78;

/** Control characters from symbol options (which quote message content) must not reach a header. */
const clean = (text: string) => text.replace(/\p{Cc}+/gu, " ");

/** The field's value (without the name), folded with CRLF + tab. */
export function resultHeaderValue(reply: RspamdReply, options: { symbols: boolean; name: string }): string {
  const verdict = `default: ${reply.action === "reject" ? "True" : "False"} [${reply.score.toFixed(2)} / ${reply.requiredScore.toFixed(2)}]`;
  const parts = [verdict];
  if (options.symbols) {
    for (const symbol of reply.symbols) {
      parts.push(`${clean(symbol.name)}(${symbol.score.toFixed(2)})[${symbol.options.map(clean).join(",")}]`);
    }
  }
  return fold(parts, options.name.length + 2);
}

/** Joins the parts with "; ", breaking the line before a part that would not fit. */
function fold(parts: readonly string[], firstLineUsed: number): string {
  let value = "";
  let column = firstLineUsed;
  for (const [index, part] of parts.entries()) {
    const last = index === parts.length - 1;
    const piece = last ? part : `${part};`;
    if (index === 0) {
      value = piece;
      column += piece.length;
      continue;
    }
    if (column + 1 + piece.length > lineLimit) {
      value += `\r\n\t${piece}`;
      column = 1 + piece.length;
    } else {
      value += ` ${piece}`;
      column += 1 + piece.length;
    }
  }
  return value;
}
