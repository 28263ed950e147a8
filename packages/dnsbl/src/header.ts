// The header field recording a result on the message, in the shape of Authentication-Results
// (RFC 8601): the receiving host, then `property=value` pairs, then one folded line per list, so a
// mail filter or a person reading the headers sees what each list said.
import type { DnsblResult, DnsblZoneResult } from "./result.ts";

/** Text inside a header comment: parentheses or a backslash would end or escape it early. */
const commentText = (text: string) => text.replace(/[()\\]/g, "");

function zoneEntry(zone: DnsblZoneResult): string {
  switch (zone.status) {
    case "listed":
      return `${zone.zone}=listed (${zone.answers.join(" ")}; weight ${zone.weight})`;
    case "clean":
      return `${zone.zone}=clean`;
    case "error":
      return `${zone.zone}=error (${commentText(zone.error ?? "unknown")})`;
  }
}

export function headerValue(hostname: string, result: DnsblResult): string {
  const summary = `${hostname}; dnsbl=${result.status} ip=${result.ip} score=${result.score} threshold=${result.threshold}`;
  return [summary, ...result.zones.map((zone) => `\t${zoneEntry(zone)}`)].join(";\r\n");
}
