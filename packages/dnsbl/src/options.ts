// The options of dnsbl(), validated when the config loads.

import { parseIpNetwork } from "@postern/core";
import { z } from "zod";

export interface DnsblZone {
  /** The zone queried, e.g. "zen.spamhaus.org". */
  zone: string;
  /**
   * What a listing adds to the score (default 1). Negative weights make an allowlist zone (e.g.
   * list.dnswl.org) lower the score instead.
   */
  weight?: number;
  /**
   * Only these answers count, each with its own weight, e.g. { "127.0.0.2": 3, "127.0.0.10": 1 }
   * for a combined list. Without it, every 127.0.0.0/8 answer counts with `weight`.
   */
  codes?: Record<string, number>;
  /** Query IPv6 clients too (RFC 5782 nibble names; default true). Many lists hold IPv4 only. */
  ipv6?: boolean;
}

export interface DnsblOptions {
  /** The lists to consult: a zone name (weight 1), or { zone, weight, codes, ipv6 }. */
  zones: (string | DnsblZone)[];
  /** The client counts as listed once the weights of the lists naming it add up to this (default 1). */
  threshold?: number;
  /** What a listed client gets at RCPT: refused (550, the default), asked to retry (451), or only recorded. */
  action?: "reject" | "defer" | "accept";
  /** Addresses and CIDR ranges never looked up (your own networks, partners, monitoring). */
  allowlist?: string[];
  /**
   * When a lookup fails (timeout, SERVFAIL, a list refusing the query): "accept" (the default)
   * records the error and lets the mail through — a broken list must not stop mail; "defer"
   * answers 451 4.4.3.
   */
  onDnsError?: "accept" | "defer";
  /** Sessions that authenticated (submission from dynamic addresses) are never refused (default true). */
  skipAuthenticated?: boolean;
  /** Local parts always accepted, so a listed sender can still ask to be delisted (RFC 5321 §4.5.1). */
  exemptRecipients?: string[];
  /** The header field recording the result on every message ("X-Postern-DNSBL"); false for none. */
  header?: string | false;
}

const hostname = /^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)+$/i;
const loopbackAnswer = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

const zoneName = z
  .string()
  .regex(hostname, { error: 'expected a DNS zone such as "zen.spamhaus.org"' })
  .transform((zone) => zone.toLowerCase().replace(/\.$/, ""));

const zoneObject = z.strictObject({
  zone: zoneName,
  weight: z.number().finite().default(1),
  codes: z
    .record(z.string(), z.number().finite())
    // Checked here rather than as the record's key schema, whose message zod replaces.
    .superRefine((codes, context) => {
      for (const answer of Object.keys(codes)) {
        if (!loopbackAnswer.test(answer)) {
          context.addIssue({ code: "custom", path: [answer], message: 'expected an answer such as "127.0.0.2"' });
        }
      }
    })
    .optional(),
  ipv6: z.boolean().default(true),
});

type ZoneEntry = z.output<typeof zoneObject>;

// A zone name or a zone object. Not a z.union: its failure is one vague "Invalid input", where the
// operator needs the message of the shape they wrote.
const zoneSchema = z.unknown().transform((value, context): ZoneEntry => {
  const parsed =
    typeof value === "string"
      ? zoneName.transform((zone): ZoneEntry => ({ zone, weight: 1, ipv6: true })).safeParse(value)
      : zoneObject.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) context.addIssue({ ...issue, code: "custom", message: issue.message });
  return z.NEVER;
});

const ipRange = z.string().refine((text) => parseIpNetwork(text) !== undefined, {
  error: 'expected an IP address or a CIDR range such as "192.0.2.0/24"',
});

export const dnsblOptionsSchema = z.strictObject({
  zones: z.array(zoneSchema).min(1, { error: 'expected at least one zone, e.g. ["zen.spamhaus.org"]' }),
  threshold: z.number().finite().positive().default(1),
  action: z.enum(["reject", "defer", "accept"]).default("reject"),
  allowlist: z.array(ipRange).default([]),
  onDnsError: z.enum(["accept", "defer"]).default("accept"),
  skipAuthenticated: z.boolean().default(true),
  exemptRecipients: z.array(z.string().min(1)).default(["postmaster", "abuse"]),
  header: z
    .union([z.literal(false), z.string().regex(/^[!-9;-~]+$/, { error: "expected a header field name" })])
    .default("X-Postern-DNSBL"),
});

export type ResolvedDnsblOptions = z.output<typeof dnsblOptionsSchema>;
export type ResolvedZone = ResolvedDnsblOptions["zones"][number];
