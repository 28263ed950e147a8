// The options of dnsbl(), validated when the config loads.
import { z } from "zod";
import { parseRange } from "./client-address.ts";

const hostname = /^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)+$/i;
const loopbackAnswer = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

const zoneName = z
  .string()
  .regex(hostname, { error: 'expected a DNS zone such as "zen.spamhaus.org"' })
  .transform((zone) => zone.toLowerCase().replace(/\.$/, ""));

const zoneObject = z.strictObject({
  /** The zone queried, e.g. "zen.spamhaus.org". */
  zone: zoneName,
  /**
   * What a listing adds to the score. Negative weights make an allowlist zone (e.g. list.dnswl.org)
   * lower the score instead.
   */
  weight: z.number().finite().default(1),
  /**
   * Only these answers count, each with its own weight, e.g. { "127.0.0.2": 3, "127.0.0.10": 1 }
   * for a combined list. Without it, every 127.0.0.0/8 answer counts with `weight`.
   */
  codes: z
    .record(z.string().regex(loopbackAnswer, { error: 'expected an answer such as "127.0.0.2"' }), z.number().finite())
    .optional(),
  /** Query IPv6 clients too (RFC 5782 nibble names). Many lists hold IPv4 only. */
  ipv6: z.boolean().default(true),
});

const zoneSchema = z.union([zoneName.transform((zone) => zoneObject.parse({ zone })), zoneObject]);

const ipRange = z.string().refine((text) => parseRange(text) !== undefined, {
  error: 'expected an IP address or a CIDR range such as "192.0.2.0/24"',
});

export const dnsblOptionsSchema = z.strictObject({
  /** The lists to consult: a zone name, or { zone, weight, codes, ipv6 }. */
  zones: z.array(zoneSchema).min(1, { error: 'expected at least one zone, e.g. ["zen.spamhaus.org"]' }),
  /** The client counts as listed once the weights of the lists naming it add up to this. */
  threshold: z.number().finite().positive().default(1),
  /** What a listed client gets at RCPT: refused (550), asked to retry (451), or only recorded. */
  action: z.enum(["reject", "defer", "accept"]).default("reject"),
  /** Addresses and ranges never looked up (your own networks, partners, monitoring). */
  allowlist: z.array(ipRange).default([]),
  /**
   * When a lookup fails (timeout, SERVFAIL, a list refusing the query): "accept" records the error
   * and lets the mail through — a broken list must not stop mail; "defer" answers 451 4.4.3.
   */
  onDnsError: z.enum(["accept", "defer"]).default("accept"),
  /** Sessions that authenticated (submission from dynamic addresses) are never refused. */
  skipAuthenticated: z.boolean().default(true),
  /** Local parts always accepted, so a listed sender can still ask to be delisted (RFC 5321 §4.5.1). */
  exemptRecipients: z.array(z.string().min(1)).default(["postmaster", "abuse"]),
  /** The header field recording the result on every message; false for none. */
  header: z
    .union([z.literal(false), z.string().regex(/^[!-9;-~]+$/, { error: "expected a header field name" })])
    .default("X-Postern-DNSBL"),
});

export type DnsblOptions = z.input<typeof dnsblOptionsSchema>;
export type ResolvedDnsblOptions = z.output<typeof dnsblOptionsSchema>;
export type ResolvedZone = ResolvedDnsblOptions["zones"][number];
