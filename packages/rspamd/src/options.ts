// The options of rspamd(), validated when the config loads: one line naming the key on a mistake.
import { byteSize, ipNetworks } from "@postern/core";
import { z } from "zod";
import { parseEndpoint, type RspamdEndpoint } from "./client.ts";

/** What Postern does when rspamd recommends an action. */
export type ActionPolicy = "reject" | "defer" | "quarantine" | "discard" | "rewriteSubject" | "addHeader" | "accept";

/** Postern's answer to each of rspamd's actions (keys are rspamd's action names in camelCase). */
export interface ActionPolicies {
  /** rspamd "reject" (default "reject": 550 5.7.1 with rspamd's message). */
  reject?: ActionPolicy;
  /** rspamd "soft reject" (default "defer": 451 4.7.1). */
  softReject?: ActionPolicy;
  /** rspamd "rewrite subject" (default "rewriteSubject": the Subject rspamd made). */
  rewriteSubject?: ActionPolicy;
  /** rspamd "add header" (default "addHeader": the spam header, X-Spam: Yes). */
  addHeader?: ActionPolicy;
  /** rspamd "greylist" (default "defer": 451 4.7.1). */
  greylist?: ActionPolicy;
  /** rspamd "no action" (default "accept"). */
  noAction?: ActionPolicy;
  /** rspamd "discard" (default "discard": 250 to the client, nothing stored). */
  discard?: ActionPolicy;
  /** rspamd "quarantine" (default "quarantine": stored under the server's quarantine route). */
  quarantine?: ActionPolicy;
}

/** A session rule: when every condition given holds, its settings replace the plugin's. */
export interface RspamdRule {
  when: {
    /** Listener names (a listener's `name` in the server config). */
    listeners?: string[];
    /** true: sessions that authenticated (AUTH); false: those that did not. */
    authenticated?: boolean;
    /** Client networks, e.g. ["10.0.0.0/8", "2001:db8::/32"]. */
    networks?: string[];
  };
  /** Do not ask rspamd at all (recorded as unscanned, reason "rule"). */
  skip?: boolean;
  /** rspamd's Settings-ID for these sessions (rspamd's `settings` module applies it). */
  settingsId?: string;
  /** Postern's answers for these sessions, over the plugin's `actions`. */
  actions?: ActionPolicies;
}

export interface RspamdOptions {
  /**
   * rspamd's normal worker (or a proxy worker in HTTP mode): "http://127.0.0.1:11333" (the
   * default), "http://[::1]:11333", or "unix:/run/rspamd/rspamd.sock".
   */
  url?: string;
  /** The whole check, from connecting to rspamd's reply (default 20000; rspamd's own task_timeout is 8 s). */
  timeoutMs?: number;
  /** rspamd unreachable, past timeoutMs, or answering an error: "defer" (default, 451 4.7.1), "reject" (554 5.7.1) or "accept" (logged, recorded as unscanned). */
  onError?: "defer" | "reject" | "accept";
  /** Messages over this size are not sent (default "50MB", rspamd's own max_message). */
  maxScanSize?: number | string;
  /** A message over maxScanSize: "accept" (default: logged, recorded as unscanned), "defer" (451 4.7.1) or "reject" (552 5.3.4). */
  oversize?: "accept" | "defer" | "reject";
  /** rspamd's Settings-ID for every message (rules may give another). */
  settingsId?: string;
  /** Postern's answer to each rspamd action. */
  actions?: ActionPolicies;
  /** The score header: its name and whether it lists the symbols; false for none (default X-Spamd-Result with symbols). */
  header?: false | { name?: string; symbols?: boolean };
  /** The field the "addHeader" answer sets (default X-Spam: Yes, as rspamd's milter). */
  spamHeader?: { name?: string; value?: string };
  /** The Subject for "rewriteSubject" when rspamd gave none; %s is the old Subject (default "*** SPAM *** %s"). */
  subject?: string;
  /** Session rules, first match wins: skip or relax for authenticated submission, trusted networks, a listener. */
  rules?: RspamdRule[];
}

const defaultActions = {
  reject: "reject",
  softReject: "defer",
  rewriteSubject: "rewriteSubject",
  addHeader: "addHeader",
  greylist: "defer",
  noAction: "accept",
  discard: "discard",
  quarantine: "quarantine",
} as const satisfies Required<ActionPolicies>;

const policyValues = ["reject", "defer", "quarantine", "discard", "rewriteSubject", "addHeader", "accept"] as const;
const policy = z.enum(policyValues, {
  error: `expected one of ${policyValues.map((value) => `"${value}"`).join(", ")}`,
});
const actionKeys = Object.keys(defaultActions) as (keyof typeof defaultActions)[];
const actionsShape = Object.fromEntries(actionKeys.map((key) => [key, policy.optional()])) as Record<
  keyof typeof defaultActions,
  z.ZodOptional<typeof policy>
>;
const actionsSchema = z.strictObject(actionsShape);

const sizeHint = 'expected a size such as 52428800, "50MB" or "512KB"';
const urlHint = 'expected "http://HOST:PORT" or "unix:/path/to/rspamd.sock"';
const fieldNameHint = "expected a header field name (printable ASCII without spaces or colons)";
const fieldName = z.string({ error: fieldNameHint }).regex(/^[\x21-\x39\x3b-\x7e]+$/, { error: fieldNameHint });
const nonEmpty = (what: string) => z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` });

const ruleSchema = z.strictObject({
  when: z.strictObject({
    listeners: z.array(nonEmpty("a listener name")).optional(),
    authenticated: z.boolean({ error: "expected true or false" }).optional(),
    networks: ipNetworks.optional(),
  }),
  skip: z.boolean({ error: "expected true or false" }).default(false),
  settingsId: nonEmpty("a settings id").optional(),
  actions: actionsSchema.optional(),
});

export const rspamdOptionsSchema = z.strictObject({
  url: z
    .string({ error: urlHint })
    .default("http://127.0.0.1:11333")
    .transform((text, context): RspamdEndpoint => {
      const endpoint = parseEndpoint(text);
      if (!endpoint) {
        context.addIssue({ code: "custom", message: urlHint });
        return z.NEVER;
      }
      return endpoint;
    }),
  timeoutMs: z
    .number({ error: "expected a number of milliseconds" })
    .int({ error: "expected a whole number of milliseconds" })
    .positive({ error: "expected a positive number of milliseconds" })
    .default(20_000),
  onError: z.enum(["defer", "reject", "accept"], { error: 'expected "defer", "reject" or "accept"' }).default("defer"),
  maxScanSize: z
    .unknown()
    .transform((value, context): number => {
      // Core's byteSize says what it expects; the default differs from its example.
      const parsed = byteSize.safeParse(value);
      if (parsed.success) return parsed.data;
      context.addIssue({ code: "custom", message: sizeHint });
      return z.NEVER;
    })
    .default(50 * 1024 * 1024),
  oversize: z
    .enum(["accept", "defer", "reject"], { error: 'expected "accept", "defer" or "reject"' })
    .default("accept"),
  settingsId: nonEmpty("a settings id").optional(),
  actions: actionsSchema.default({}).transform((given) => ({ ...defaultActions, ...given })),
  header: z
    .union(
      [
        z.literal(false),
        z.strictObject({ name: fieldName.default("X-Spamd-Result"), symbols: z.boolean().default(true) }),
      ],
      { error: 'expected false or { name: "X-Spamd-Result", symbols: true }' },
    )
    .default({ name: "X-Spamd-Result", symbols: true }),
  spamHeader: z
    .strictObject({ name: fieldName.default("X-Spam"), value: z.string().default("Yes") })
    .default({ name: "X-Spam", value: "Yes" }),
  subject: z.string().default("*** SPAM *** %s"),
  rules: z.array(ruleSchema).default([]),
});

export type ResolvedRspamdOptions = z.output<typeof rspamdOptionsSchema>;
export type ResolvedActions = ResolvedRspamdOptions["actions"];
export type ResolvedRule = z.output<typeof ruleSchema>;
