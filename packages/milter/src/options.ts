// The options of milter(), validated when the config loads.
import { z } from "zod";
import type { MilterAddress } from "./protocol/connection.ts";
import { ActionFlag } from "./protocol/constants.ts";

export type MilterActionName =
  | "addHeaders"
  | "changeHeaders"
  | "changeBody"
  | "addRecipients"
  | "deleteRecipients"
  | "quarantine"
  | "changeSender";

export interface MilterConfig {
  /**
   * Where the milter listens: "inet:127.0.0.1:8891" (Postfix style), "inet:8891@127.0.0.1"
   * (Sendmail/OpenDKIM style), "inet6:[::1]:8891", or "unix:/run/opendkim/opendkim.sock".
   */
  address: string;
  /** The name used in logs (default: the address). */
  name?: string;
  /**
   * What happens when the milter cannot be reached, times out, breaks the protocol or dies:
   * "tempfail" (the default: 451 4.7.1 for the rest of the session), "reject" (550 5.7.1) or
   * "accept" (go on as if the milter were not configured), as Postfix's milter_default_action.
   */
  defaultAction?: "tempfail" | "reject" | "accept";
  timeouts?: {
    /** Connecting and option negotiation (default 5000). */
    connectMs?: number;
    /** One envelope command's reply: connect info, HELO, MAIL, RCPT (default 10000). */
    commandMs?: number;
    /** The whole message, from DATA to the end-of-message reply with its changes (default 60000). */
    contentMs?: number;
  };
  /** The changes the milter may make (default: all of them). */
  actions?: MilterActionName[];
}

export interface MilterOptions {
  /** The milters, consulted in this order at every stage. */
  milters: MilterConfig[];
}

const actionFlags: Record<MilterActionName, number> = {
  addHeaders: ActionFlag.addHeaders,
  changeHeaders: ActionFlag.changeHeaders,
  changeBody: ActionFlag.changeBody,
  addRecipients: ActionFlag.addRecipients | ActionFlag.addRecipientsWithParameters,
  deleteRecipients: ActionFlag.deleteRecipients,
  quarantine: ActionFlag.quarantine,
  changeSender: ActionFlag.changeFrom,
};
const actionNames = Object.keys(actionFlags) as [MilterActionName, ...MilterActionName[]];

const addressHint = 'expected "inet:HOST:PORT", "inet:PORT@HOST" or "unix:/path/to/socket"';

/** Parses a milter address in Postfix's or Sendmail's notation. */
export function parseMilterAddress(text: string): MilterAddress | undefined {
  const unix = /^(?:unix|local):(\/.+)$/.exec(text);
  if (unix) return { kind: "unix", path: unix[1]! };
  const inet = /^inet6?:(.+)$/.exec(text);
  if (!inet) return undefined;
  const rest = inet[1]!;
  const sendmail = /^(\d+)@(.+)$/.exec(rest);
  const postfix = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(rest);
  const host = sendmail ? sendmail[2]!.replace(/^\[(.*)\]$/, "$1") : (postfix?.[1] ?? postfix?.[2]);
  const port = Number(sendmail ? sendmail[1] : postfix?.[3]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { kind: "tcp", host, port };
}

const timeout = z.number().int().positive({ error: "expected a positive number of milliseconds" });

const milterSchema = z
  .strictObject({
    address: z.string({ error: addressHint }).transform((text, context) => {
      const address = parseMilterAddress(text);
      if (!address) {
        context.addIssue({ code: "custom", message: addressHint });
        return z.NEVER;
      }
      return address;
    }),
    name: z.string().min(1).optional(),
    defaultAction: z.enum(["tempfail", "reject", "accept"]).default("tempfail"),
    timeouts: z
      .strictObject({
        connectMs: timeout.default(5000),
        commandMs: timeout.default(10_000),
        contentMs: timeout.default(60_000),
      })
      .default({ connectMs: 5000, commandMs: 10_000, contentMs: 60_000 }),
    actions: z.array(z.enum(actionNames, { error: `expected one of ${actionNames.join(", ")}` })).default(actionNames),
  })
  .transform((milter, context) => ({
    ...milter,
    name: milter.name ?? String(context.value.address),
    actionFlags:
      milter.actions.reduce((flags, name) => flags | actionFlags[name], 0) |
      // Macro lists cost nothing to honour and spare the milter work.
      ActionFlag.setSymbolList,
  }));

export const milterOptionsSchema = z.strictObject({
  milters: z
    .array(milterSchema)
    .min(1, { error: 'expected at least one milter, e.g. [{ address: "inet:127.0.0.1:8891" }]' }),
});

export type ResolvedMilterOptions = z.output<typeof milterOptionsSchema>;
export type ResolvedMilter = ResolvedMilterOptions["milters"][number];
