// `postern dns records` output: the plan in zone-file syntax (names with their final dot, TXT
// values as quoted strings of at most 255 octets), each group with a comment saying what it is for.
import { isIP } from "node:net";
import type { DnsPlan } from "./plan.ts";

/** A TXT value as one quoted string, or several in parentheses when it is longer than 255 octets. */
export function quoteTxt(value: string): string {
  const parts: string[] = [];
  for (let offset = 0; offset < value.length; offset += 255) parts.push(`"${value.slice(offset, offset + 255)}"`);
  return parts.length <= 1 ? (parts[0] ?? '""') : `( ${parts.join("\n    ")} )`;
}

const fqdn = (name: string) => `${name}.`;

export function formatZone(plan: DnsPlan, source: string): string {
  const { domain } = plan;
  const out: string[] = [
    `; DNS records for ${domain}, from ${source}. Zone-file syntax: names end with a dot.`,
    "",
    `; MX: where other servers deliver mail for ${domain}.`,
    ...plan.mxHosts.map((host, index) => `${fqdn(domain)} IN MX ${10 * (index + 1)} ${fqdn(host)}`),
  ];
  const mxHost = plan.mxHosts[0];
  if (mxHost && plan.ips.length > 0) {
    for (const ip of plan.ips) out.push(`${fqdn(mxHost)} IN ${isIP(ip) === 6 ? "AAAA" : "A"} ${ip}`);
  } else if (mxHost) {
    out.push(`; ${fqdn(mxHost)} IN A <this server's public address>   (run with --ip to fill it in)`);
  }
  out.push(
    "",
    `; SPF (RFC 7208): the hosts that may send mail from ${domain}: its MX hosts, nothing else.`,
    `${fqdn(plan.spf.name)} IN TXT ${quoteTxt(plan.spf.value)}`,
    "",
  );
  if (plan.dkim.length > 0) {
    out.push("; DKIM (RFC 6376): the public half of each signing key.");
    for (const key of plan.dkim) out.push(`${fqdn(key.name)} IN TXT ${quoteTxt(key.value)}   ; ${key.keyFile}`);
  } else {
    out.push(
      `; DKIM: no signing key for ${domain} in the config; make one with`,
      `;   postern dkim keygen --domain ${domain} --selector <selector>`,
      "; and add it to @postern/dkim's sign.keys (or pass --dkim-key <file> --selector <selector>).",
    );
  }
  out.push(
    "",
    `; DMARC (RFC 7489): what receivers do with mail claiming to be from ${domain} that fails SPF and DKIM,`,
    "; and where they send reports. Start with p=none, then raise it once the reports show only your mail.",
    `${fqdn(plan.dmarc.name)} IN TXT ${quoteTxt(plan.dmarc.value)}`,
    "",
    "; MTA-STS (RFC 8461): senders deliver to you over TLS with a valid certificate only. The TXT record",
    "; announces the policy; its id changes whenever the policy does.",
    `${fqdn(plan.mtaSts.name)} IN TXT ${quoteTxt(plan.mtaSts.value)}`,
    `; ${fqdn(plan.mtaSts.host)} must point at a web server with a certificate for that name, serving`,
    `; ${plan.mtaSts.policyUrl} (text/plain) with:`,
    ...plan.mtaSts.policy
      .trimEnd()
      .split("\r\n")
      .map((line) => `;   ${line}`),
    "; (`postern dns records --policy` prints just this file.) Use mode: enforce once TLS-RPT reports are clean.",
    "",
    "; TLS-RPT (RFC 8460): where senders report TLS failures delivering to you.",
    `${fqdn(plan.tlsRpt.name)} IN TXT ${quoteTxt(plan.tlsRpt.value)}`,
    "",
  );
  if (plan.ptr.length > 0) {
    out.push("; Reverse DNS is not in your zone: ask whoever owns the address (your hosting provider) for");
    for (const ptr of plan.ptr) out.push(`${fqdn(ptr.name)} IN PTR ${fqdn(ptr.target)}`);
  } else {
    out.push(
      `; Reverse DNS: ask whoever owns the server's address for a PTR record naming ${fqdn(mxHost ?? domain)}`,
      ";   (run with --ip to print it).",
    );
  }
  return `${out.join("\n")}\n`;
}
