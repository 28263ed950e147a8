// Domain names are compared in one form: lower-case ASCII (IDNA/punycode), no trailing dot.
// smtp-server hands us the domain of an address already converted to Unicode, while operators may
// write either form in their config, so both sides go through the same conversion.
import { isIP } from "node:net";
import { domainToASCII } from "node:url";

const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** The comparable form of a domain name, or undefined when it is not a host name. */
export function normalizeDomain(name: string): string | undefined {
  const trimmed = name.trim().replace(/\.$/, "");
  if (trimmed === "" || isIP(trimmed) !== 0) return undefined;
  const ascii = domainToASCII(trimmed);
  if (ascii === "" || ascii.length > 253) return undefined;
  const labels = ascii.split(".");
  if (!labels.every((part) => label.test(part))) return undefined;
  // An all-numeric last label would make "10.0.0.300" a "domain".
  if (/^\d+$/.test(labels.at(-1)!)) return undefined;
  return ascii;
}
