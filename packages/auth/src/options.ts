// The options of auth(): validated once when the config loads; a bad value is one line naming the
// key, e.g. `@postern/auth.failureLimit.perClient: expected a whole number ≥ 1`.
import { z } from "zod";

export interface AuthOptions {
  /** The password file written by `postern user add` (name:hash lines, scrypt or argon2id). */
  passwordFile: string;
  /**
   * Sender addresses each user may use besides the default rule: addresses, "@domain" for a whole
   * domain, "*" for any. Keys are user names (case-insensitive).
   */
  senders?: Record<string, string[]>;
  /**
   * What every authenticated user may use: "address" (their user name, when it is an address;
   * the default), "domain" (any address at their user name's domain), "none" (only `senders`).
   */
  defaultSenders?: "address" | "domain" | "none";
  /** Separator of subaddresses ("+"): the owner of alice@ may send as alice+tag@. Default: none. */
  subaddressSeparator?: string;
  /** Check the From header too (553 5.7.1 after DATA). Default true. */
  checkFromHeader?: boolean;
  /** Let authenticated users send with the null sender <> (bounces, receipts). Default true. */
  allowNullSender?: boolean;
  /**
   * The built-in floor for failed AUTH, per client address (IPv6 per /64), or false to leave it
   * all to @postern/rate-limit. Default: 10 failures per 15 minutes, 3 per session.
   */
  failureLimit?: { perClient?: number; windowSeconds?: number; perSession?: number } | false;
}

const senderEntry = z.string().refine((entry) => entry === "*" || /^[^@\s]*@[^@\s]+$/.test(entry), {
  error: 'expected an address ("alice@example.com"), a domain ("@example.com") or "*"',
});

export const authOptionsSchema = z.strictObject({
  passwordFile: z.string({ error: "expected the path of the password file" }).min(1),
  senders: z.record(z.string().min(1), z.array(senderEntry)).default({}),
  defaultSenders: z.enum(["address", "domain", "none"]).default("address"),
  subaddressSeparator: z.string().length(1).optional(),
  checkFromHeader: z.boolean().default(true),
  allowNullSender: z.boolean().default(true),
  failureLimit: z
    .union([
      z.literal(false),
      z.strictObject({
        perClient: z.number().int().min(1).default(10),
        windowSeconds: z.number().int().min(1).default(900),
        perSession: z.number().int().min(1).default(3),
      }),
    ])
    .default({ perClient: 10, windowSeconds: 900, perSession: 3 }),
});

export type ResolvedAuthOptions = z.output<typeof authOptionsSchema>;
