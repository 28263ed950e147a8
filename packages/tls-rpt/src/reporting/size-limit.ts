// The size limit a report destination may carry: DMARC's "!" suffix on a rua URI (RFC 7489 §6.2,
// "mailto:reports@example.com!10m"), which TLS-RPT records are read with too. The URIs themselves
// may not hold a bare "!" (both RFCs' ABNF have it %-encoded), so a trailing "!<digits><unit>" is
// the limit, never part of the address.

const units: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
const suffix = /^(.*)!(\d+)([kmgt]?)$/i;

/** A rua entry split into its URI and its limit in bytes (undefined: none given). */
export function splitSizeLimit(entry: string): { uri: string; maxBytes: number | undefined } {
  const sized = suffix.exec(entry);
  if (!sized) return { uri: entry, maxBytes: undefined };
  return { uri: sized[1]!, maxBytes: Number(sized[2]) * (units[sized[3]!.toLowerCase()] ?? 1) };
}

/**
 * The size of an attachment of `bytes` as mailed — base64 in 76-column lines with CRLF — which is
 * what a destination's limit is checked against.
 */
export function base64Size(bytes: number): number {
  const base64 = Math.ceil(bytes / 3) * 4;
  return base64 + Math.max(0, Math.ceil(base64 / 76) - 1) * 2;
}
