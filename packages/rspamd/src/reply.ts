// rspamd's /checkv2 reply (JSON), checked and turned into the shape the plugin works with. The
// protocol's facts (rspamd.com/doc/developers/protocol.html, and what rspamd's own milter does
// with a reply): `action` is one of rspamd's action names, with spaces ("no action", "add header");
// `messages.smtp_message` is the text meant for the SMTP reply; the `milter` block asks for header
// and recipient changes. Fields Postern does not use are ignored, not refused.
import { z } from "zod";
import { RspamdError } from "./errors.ts";

/** rspamd's actions, as it names them in a reply. */
export const rspamdActions = [
  "reject",
  "soft reject",
  "rewrite subject",
  "add header",
  "greylist",
  "no action",
] as const;
/** rspamd's built-in action types beyond the threshold actions (rspamd ≥ 2.0): honoured as named. */
export const specialActions = ["discard", "quarantine"] as const;
export type RspamdAction = (typeof rspamdActions)[number] | (typeof specialActions)[number];

export interface RspamdSymbol {
  readonly name: string;
  readonly score: number;
  readonly options: readonly string[];
}

/** One field rspamd asks to add: at the end, or at `order` (0 = top; negative counts from the end). */
export interface HeaderToAdd {
  readonly name: string;
  readonly value: string;
  readonly order: number | undefined;
}

/** rspamd's `milter` block: the changes it asks an MTA to make. */
export interface MilterBlock {
  /** Field name → which occurrence to remove: n ≥ 1 the n-th, 0 every one, −n the n-th from the end. */
  readonly removeHeaders: readonly { readonly name: string; readonly occurrence: number }[];
  readonly addHeaders: readonly HeaderToAdd[];
  readonly addRecipients: readonly string[];
  readonly removeRecipients: readonly string[];
  /** A new envelope sender; core has no API for it, so it is reported, not applied. */
  readonly changeFrom: string | undefined;
  /** "discard" or "quarantine": what a reject becomes (rspamd's milter does the same). */
  readonly rejectAs: "discard" | "quarantine" | undefined;
  /** The spam header's value, or fields to set, for the "add header" action. */
  readonly spamHeader: string | Readonly<Record<string, string>> | undefined;
  /** Do not apply the action: only record it in X-Rspamd-Action, and accept. */
  readonly noAction: boolean;
}

export interface RspamdReply {
  readonly action: RspamdAction;
  readonly score: number;
  readonly requiredScore: number;
  /** rspamd skipped the checks (its settings, or a pre-result such as GTUBE). */
  readonly skipped: boolean;
  /** By score, strongest first (as rspamd's X-Spamd-Result lists them). */
  readonly symbols: readonly RspamdSymbol[];
  /** The text rspamd wants in the SMTP reply, if any. */
  readonly smtpMessage: string | undefined;
  /** The Subject for "rewrite subject". */
  readonly subject: string | undefined;
  readonly messageId: string | undefined;
  /** rspamd's own time for the scan, in ms (its `time_real`). */
  readonly scanMs: number | undefined;
  readonly milter: MilterBlock | undefined;
  /** DKIM-Signature fields rspamd's dkim_signing made, to put on top in this order. */
  readonly dkimSignatures: readonly string[];
}

const fieldName = z.string().regex(/^[\x21-\x39\x3b-\x7e]+$/, "not a header field name");
const headerEntry = z.union([z.string(), z.object({ value: z.string(), order: z.number().int().optional() })]);

const milterSchema = z.object({
  add_headers: z.record(fieldName, z.union([headerEntry, z.array(headerEntry)])).optional(),
  remove_headers: z.record(fieldName, z.number().int()).optional(),
  change_from: z.string().optional(),
  reject: z.string().optional(),
  spam_header: z.union([z.string(), z.record(fieldName, z.string())]).optional(),
  no_action: z.boolean().optional(),
  add_rcpt: z.array(z.string()).optional(),
  del_rcpt: z.array(z.string()).optional(),
});

const replySchema = z.object({
  action: z.string(),
  score: z.number(),
  required_score: z.number(),
  is_skipped: z.boolean().optional(),
  symbols: z
    .record(
      z.string(),
      z.object({ name: z.string().optional(), score: z.number().optional(), options: z.array(z.unknown()).optional() }),
    )
    .optional(),
  messages: z.record(z.string(), z.unknown()).optional(),
  subject: z.string().optional(),
  "message-id": z.string().optional(),
  time_real: z.number().optional(),
  milter: milterSchema.optional(),
  "dkim-signature": z.union([z.string(), z.array(z.string())]).optional(),
});

const knownActions: readonly string[] = [...rspamdActions, ...specialActions];

function milterBlock(block: z.output<typeof milterSchema>): MilterBlock {
  const addHeaders: HeaderToAdd[] = [];
  for (const [name, entries] of Object.entries(block.add_headers ?? {})) {
    for (const entry of Array.isArray(entries) ? entries : [entries]) {
      addHeaders.push(
        typeof entry === "string"
          ? { name, value: entry, order: undefined }
          : { name, value: entry.value, order: entry.order },
      );
    }
  }
  const rejectAs = block.reject === "discard" || block.reject === "quarantine" ? block.reject : undefined;
  return {
    removeHeaders: Object.entries(block.remove_headers ?? {}).map(([name, occurrence]) => ({ name, occurrence })),
    addHeaders,
    addRecipients: (block.add_rcpt ?? []).map(bareAddress),
    removeRecipients: (block.del_rcpt ?? []).map(bareAddress),
    changeFrom: block.change_from === undefined ? undefined : bareAddress(block.change_from),
    rejectAs,
    spamHeader: block.spam_header,
    noAction: block.no_action ?? false,
  };
}

/** rspamd may write an address with or without angle brackets; the envelope API takes it without. */
const bareAddress = (address: string) => address.trim().replace(/^<(.*)>$/, "$1");

/** Parses the body of a 200 reply to /checkv2; throws an RspamdError (BAD_REPLY) when it is not one. */
export function parseReply(body: string): RspamdReply {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (error) {
    throw new RspamdError("POSTERN_RSPAMD_BAD_REPLY", `rspamd's reply is not JSON: ${snippet(body)}`, {
      cause: error,
    });
  }
  const parsed = replySchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RspamdError(
      "POSTERN_RSPAMD_BAD_REPLY",
      `rspamd's reply is not a scan result (${issue.path.join(".") || "reply"}: ${issue.message})`,
    );
  }
  const reply = parsed.data;
  if (!knownActions.includes(reply.action)) {
    throw new RspamdError(
      "POSTERN_RSPAMD_BAD_REPLY",
      `rspamd answered with the action "${reply.action}", which Postern does not know (expected one of ${knownActions.join(", ")})`,
    );
  }
  const symbols = Object.entries(reply.symbols ?? {})
    .map(([key, symbol]) => ({
      name: symbol.name ?? key,
      score: symbol.score ?? 0,
      options: (symbol.options ?? []).map(String),
    }))
    .sort((a, b) => Math.abs(b.score) - Math.abs(a.score) || a.name.localeCompare(b.name));
  const smtpMessage = reply.messages?.smtp_message;
  const signatures = reply["dkim-signature"];
  return {
    action: reply.action as RspamdAction,
    score: reply.score,
    requiredScore: reply.required_score,
    skipped: reply.is_skipped ?? false,
    symbols,
    smtpMessage: typeof smtpMessage === "string" && smtpMessage.trim() !== "" ? smtpMessage : undefined,
    subject: reply.subject,
    messageId: reply["message-id"],
    scanMs: reply.time_real === undefined ? undefined : reply.time_real * 1000,
    milter: reply.milter ? milterBlock(reply.milter) : undefined,
    dkimSignatures: signatures === undefined ? [] : Array.isArray(signatures) ? signatures : [signatures],
  };
}

/** The start of a body, for an error message. */
export function snippet(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return JSON.stringify(flat.length > 120 ? `${flat.slice(0, 120)}…` : flat);
}
