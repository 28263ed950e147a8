// What a domain should publish for mail to and from this server, worked out once and used both to
// print the records (`postern dns records`) and to compare with what is published (`dns check`):
// MX and the MX host's addresses, SPF, DKIM from the signing keys, DMARC, MTA-STS (its TXT record
// and its policy file), TLS-RPT, and the PTR records the address owner must set.
import { createHash } from "node:crypto";
import { parseIpAddress, reversedName } from "@postern/core";
import type { DkimPublicKey } from "./dkim-public-key.ts";

export type DmarcPolicy = "none" | "quarantine" | "reject";
export type MtaStsMode = "testing" | "enforce";

export interface DkimKeyInput extends DkimPublicKey {
  readonly selector: string;
  /** Where the private key is, for messages. */
  readonly keyFile: string;
}

export interface DnsPlanInput {
  readonly domain: string;
  readonly mxHosts: readonly string[];
  /** The MX host's public addresses, when known. */
  readonly ips: readonly string[];
  readonly dkim: readonly DkimKeyInput[];
  /** Where DMARC aggregate and TLS-RPT reports go. */
  readonly reportTo: string;
  readonly dmarcPolicy: DmarcPolicy;
  readonly mtaStsMode: MtaStsMode;
  /** How long senders cache the MTA-STS policy, in seconds. */
  readonly mtaStsMaxAge: number;
}

export interface TxtRecord {
  readonly name: string;
  readonly value: string;
}

export interface DnsPlan {
  readonly domain: string;
  readonly mxHosts: readonly string[];
  readonly ips: readonly string[];
  readonly spf: TxtRecord;
  readonly dkim: readonly (TxtRecord & { selector: string; keyFile: string; p: string })[];
  readonly dmarc: TxtRecord;
  readonly mtaSts: TxtRecord & { host: string; policyUrl: string; policy: string };
  readonly tlsRpt: TxtRecord;
  readonly ptr: readonly { ip: string; name: string; target: string }[];
}

export const normalizeName = (name: string): string => name.trim().toLowerCase().replace(/\.$/, "");

export function mtaStsPolicy(mode: MtaStsMode, mxHosts: readonly string[], maxAge: number): string {
  return ["version: STSv1", `mode: ${mode}`, ...mxHosts.map((host) => `mx: ${host}`), `max_age: ${maxAge}`, ""].join(
    "\r\n",
  );
}

export function planDns(input: DnsPlanInput): DnsPlan {
  const domain = normalizeName(input.domain);
  const mxHosts = input.mxHosts.map(normalizeName);
  const policy = mtaStsPolicy(input.mtaStsMode, mxHosts, input.mtaStsMaxAge);
  // The id only has to change when the policy does (RFC 8461 §3.1); a digest of the policy does.
  const id = createHash("sha256").update(policy).digest("hex").slice(0, 20);
  const host = `mta-sts.${domain}`;
  return {
    domain,
    mxHosts,
    ips: input.ips,
    spf: { name: domain, value: "v=spf1 mx -all" },
    dkim: input.dkim.map((key) => ({
      selector: key.selector,
      keyFile: key.keyFile,
      p: key.p,
      name: `${key.selector}._domainkey.${domain}`,
      value: `v=DKIM1; k=${key.k}; p=${key.p}`,
    })),
    dmarc: { name: `_dmarc.${domain}`, value: `v=DMARC1; p=${input.dmarcPolicy}; rua=mailto:${input.reportTo}` },
    mtaSts: {
      name: `_mta-sts.${domain}`,
      value: `v=STSv1; id=${id}`,
      host,
      policyUrl: `https://${host}/.well-known/mta-sts.txt`,
      policy,
    },
    tlsRpt: { name: `_smtp._tls.${domain}`, value: `v=TLSRPTv1; rua=mailto:${input.reportTo}` },
    ptr: input.ips.flatMap((ip) => {
      const address = parseIpAddress(ip);
      if (!address) return [];
      const zone = address.kind() === "ipv4" ? "in-addr.arpa" : "ip6.arpa";
      return [{ ip: address.toString(), name: reversedName(address, zone), target: mxHosts[0] ?? domain }];
    }),
  };
}
