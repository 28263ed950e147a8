// Subaddressing as Postfix's recipient_delimiter does it: the local part splits at the first
// character that is any of the delimiters ("+", or "+-" for both), so `alice+news` is `alice` with
// the detail `news`. Core gets the shared primitive in issue 13; this module then goes.

export interface Subaddress {
  readonly base: string;
  readonly detail: string;
}

/** Splits `localPart`; undefined when it has no delimiter or nothing before it (`+news`). */
export function splitSubaddress(localPart: string, delimiters: string): Subaddress | undefined {
  if (delimiters === "" || localPart.startsWith('"')) return undefined;
  for (let index = 1; index < localPart.length; index++) {
    if (delimiters.includes(localPart[index]!)) {
      return { base: localPart.slice(0, index), detail: localPart.slice(index + 1) };
    }
  }
  return undefined;
}
