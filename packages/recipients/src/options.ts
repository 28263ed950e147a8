// The options of recipients(): validated with zod and turned into the normalized form the policy
// uses (ASCII lower-case domains, parsed networks), so a bad value fails when the config loads.
import { z } from "zod";
import { normalizeDomain } from "./domain-name.ts";
import { parseNetwork } from "./relay-networks.ts";

export interface RecipientsOptions {
  /** Local domains, matched case-insensitively (IDNs in either Unicode or punycode form). */
  domains: string[];
  /**
   * Known local addresses ("alice@example.com") and catch-alls ("*@example.com"). When omitted,
   * every local part of a local domain is accepted.
   */
  mailboxes?: string[];
  relay?: {
    /** Client networks allowed to relay, as CIDRs or single addresses (IPv4 and IPv6). */
    networks?: string[];
    /** Whether an authenticated session may relay (default true). */
    authenticated?: boolean;
  };
}

const domainSchema = z.string().transform((value, context) => {
  const domain = normalizeDomain(value);
  if (domain === undefined) {
    context.addIssue({ code: "custom", message: 'expected a domain name such as "example.com"' });
    return z.NEVER;
  }
  return domain;
});

const networkSchema = z.string().transform((value, context) => {
  const network = parseNetwork(value);
  if (network === undefined) {
    context.addIssue({
      code: "custom",
      message: 'expected an IP address or CIDR network such as "10.0.0.0/8" or "2001:db8::/32"',
    });
    return z.NEVER;
  }
  return network;
});

export const recipientsOptionsSchema = z
  .strictObject({
    domains: z.array(domainSchema, { error: 'expected a list of local domains, e.g. ["example.com"]' }),
    mailboxes: z.array(z.string()).optional(),
    relay: z
      .strictObject({
        networks: z.array(networkSchema).default([]),
        authenticated: z.boolean().default(true),
      })
      .prefault({}),
  })
  .transform((options, context) => {
    const domains = new Set(options.domains);
    let mailboxes: Set<string> | undefined;
    if (options.mailboxes) {
      mailboxes = new Set();
      for (const [index, entry] of options.mailboxes.entries()) {
        const at = entry.lastIndexOf("@");
        const localPart = at > 0 ? entry.slice(0, at).toLowerCase() : "";
        const domain = at > 0 ? normalizeDomain(entry.slice(at + 1)) : undefined;
        if (!localPart || domain === undefined || !domains.has(domain)) {
          context.addIssue({
            code: "custom",
            path: ["mailboxes", index],
            message: `expected "user@domain" or "*@domain" with a domain listed in domains (${[...domains].join(", ") || "none"})`,
          });
          return z.NEVER;
        }
        mailboxes.add(`${localPart}@${domain}`);
      }
    }
    return { domains, mailboxes, relay: options.relay };
  });

export type ResolvedRecipientsOptions = z.output<typeof recipientsOptionsSchema>;
