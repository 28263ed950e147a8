// The plugin contract: the SMTP hooks with their table (combining rule, default, deadline,
// failure reply — hook-set.ts), how a hook may be declared, the plugin shape and what setup() gets.
import type { Logger } from "pino";
import type { DnsResolver } from "./dns.ts";
import { PosternError } from "./errors.ts";
import type { EventChannel } from "./events.ts";
import type { HookInfo, HookRunner } from "./hook-runner.ts";
import {
  type AnyHookSet,
  type AnySetHandlers,
  defineHookSet,
  type HookContext,
  type HookDeclaration,
  type HookDeclarations,
  type HookSet,
} from "./hook-set.ts";
import type { Submission, SubmissionOutcome } from "./local-submission.ts";
import type { Message } from "./message.ts";
import { coreReplies, type SmtpReply } from "./reply.ts";
import type { Address, Credentials, ListenerInfo, Recipient, RouteGroup, Session, Transaction } from "./session.ts";
import { type DiscardVerdict, defer, disconnect, isVerdict, type Refusal, reject, type Verdict } from "./verdict.ts";

export type { HookContext };

export type HookOutcome<Answer = Verdict> = Answer | undefined | void;
export type HookReturn<Answer = Verdict> = HookOutcome<Answer> | Promise<HookOutcome<Answer>>;

/** The SMTP hooks: every one but `close` answers with a verdict or nothing (let the next plugin decide). */
export interface Hooks {
  connect(session: Session, context: HookContext): HookReturn;
  secure(session: Session, context: HookContext): HookReturn;
  helo(session: Session, name: string, context: HookContext): HookReturn;
  auth(session: Session, credentials: Credentials, context: HookContext): HookReturn;
  mailFrom(transaction: Transaction, address: Address, context: HookContext): HookReturn;
  rcptTo(transaction: Transaction, recipient: Address, context: HookContext): HookReturn;
  data(transaction: Transaction, message: Message, context: HookContext): HookReturn<Verdict | DiscardVerdict>;
  queue(transaction: Transaction, message: Message, group: RouteGroup, context: HookContext): HookReturn;
  close(session: Session, context: HookContext): void | Promise<void>;
}

export type HookName = keyof Hooks;
/** Hooks whose first verdict ends the chain. */
export type VerdictHookName = Exclude<HookName, "close">;

export type PluginHooks = HookDeclarations<Hooks>;
export type { HookDeclaration };

/** A refusal verdict made from one of core's replies (the table's defaults and failure answers). */
export function refusalOf(reply: SmtpReply): Refusal {
  const [status, ...words] = reply.message.split(" ");
  const text = words.join(" ");
  const enhanced = status as `${2 | 4 | 5}.${number}.${number}`;
  if (reply.close) return disconnect(enhanced, text, reply.code);
  return reply.code >= 500 ? reject(enhanced, text, reply.code) : defer(enhanced, text, reply.code);
}

const failed = () => refusalOf(coreReplies.hookFailed);
const timedOut = () => refusalOf(coreReplies.hookTimedOut);

const verdictProblem = (value: unknown): string | undefined =>
  isVerdict(value) && value.kind !== "discard"
    ? undefined
    : "not a verdict; use accept(), reject(), defer() or disconnect()";

const verdictSpec = {
  problem: verdictProblem,
  onError: failed,
  onTimeout: timedOut,
} as const;

/** The SMTP hook table: what `postern check` prints and what every SMTP hook call follows. */
export const smtpHooks: HookSet<Hooks> = defineHookSet<Hooks>("smtp", {
  connect: { combine: "first", when: "after accept (and PROXY header), before the greeting", ...verdictSpec },
  secure: { combine: "first", when: "after a TLS handshake", ...verdictSpec },
  helo: { combine: "first", when: "HELO / EHLO", ...verdictSpec },
  auth: {
    combine: "first",
    when: "AUTH; nobody accepting refuses it",
    whenSilent: refusalOf(coreReplies.authRefused),
    ...verdictSpec,
  },
  mailFrom: { combine: "first", when: "MAIL FROM", ...verdictSpec },
  rcptTo: {
    combine: "first",
    when: "each RCPT TO; nobody claiming the recipient refuses it (no open relay)",
    whenSilent: refusalOf(coreReplies.relayDenied),
    ...verdictSpec,
    problem: rcptProblem,
  },
  data: {
    combine: "first",
    when: "end of DATA: the message is spooled, not yet acknowledged; it may be rewritten",
    ...verdictSpec,
    problem: (value: unknown) =>
      isVerdict(value) ? undefined : "not a verdict; use accept(), reject(), defer(), disconnect() or discard()",
  },
  queue: {
    combine: "first",
    when: "once per route group; nobody storing it defers the message (nothing acknowledged is lost)",
    whenSilent: refusalOf(coreReplies.notStored),
    ...verdictSpec,
  },
  close: {
    combine: "all",
    when: "the connection closed (every plugin runs)",
    problem: () => undefined,
    onError: () => undefined,
    onTimeout: () => undefined,
  },
});

function rcptProblem(value: unknown): string | undefined {
  const problem = verdictProblem(value);
  if (problem) return problem;
  const verdict = value as Verdict;
  if (verdict.kind !== "accept") return undefined;
  if (verdict.expand) {
    if (verdict.expand.length === 0) return "accepted a recipient with an empty expansion";
    if (verdict.expand.some((entry) => typeof entry.address !== "string" || !entry.route)) {
      return "accepted a recipient with an expansion entry lacking an address or route";
    }
    return undefined;
  }
  return verdict.route
    ? undefined
    : 'accepted a recipient without a route; use accept({ route: "local" }) or another route';
}

/** What a plugin gets in setup(): the server's shared services. */
export interface ServerContext {
  readonly hostname: string;
  /** The authserv-id of our Authentication-Results fields (RFC 8601); the hostname unless configured. */
  readonly authservId: string;
  readonly logger: Logger;
  readonly resolver: DnsResolver;
  /** Directory for the server's temporary files (the DATA spool). */
  readonly spoolDir: string;
  /** The default deadline of one hook call; plugins keep their own I/O bounds below it. */
  readonly hookTimeoutMs: number;
  /** The plugins in config order, for plugins that cooperate (read-only). */
  readonly plugins: readonly Plugin[];
  /** The observer channel: subscribe to core's events and emit your own. */
  readonly events: EventChannel;
  /** The runner of a hook set a plugin `defines` (outbound runs its delivery hooks through it). */
  runner<Signatures>(set: HookSet<Signatures>): HookRunner<Signatures>;
  /** Every hook of every set with its handlers in order (what `postern check` prints). */
  hookTable(): HookInfo[];
  /** The addresses the listeners are bound to (empty until the server listens). */
  listening(): readonly ListeningAddress[];
  /**
   * Hands a message to this server itself (a delivery report for a local sender, a report a plugin
   * writes): the rcptTo hooks route each recipient, the queue hooks store it; no client-facing and
   * no data hooks run. Recipients nobody claims come back as refused, for the caller to deliver
   * another way. Throws a PosternError (POSTERN_SUBMIT_REFUSED) when a store refused it.
   */
  submit(submission: Submission): Promise<SubmissionOutcome>;
}

export interface ListeningAddress {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly tls: ListenerInfo["tls"];
}

export interface Plugin {
  /** The package name; used in logs, errors and metrics. */
  name: string;
  /** Before listening: open pools, load keys, subscribe to events, fail fast on bad setup. */
  setup?(server: ServerContext): void | Promise<void>;
  /** On shutdown, after the listeners closed. */
  close?(): void | Promise<void>;
  /** Handlers of the SMTP hooks. */
  hooks?: PluginHooks;
  /** Hook sets this plugin runs (e.g. outbound's delivery hooks), so core builds and lists them. */
  defines?: readonly AnyHookSet[];
  /** Handlers for hook sets other plugins define: `[outboundHooks.handlers({ bounced() {} })]`. */
  handles?: readonly AnySetHandlers[];
}

/** Identity function that checks a plugin literal against the contract. */
export function definePlugin<P extends Plugin>(plugin: P): P {
  return plugin;
}

/** A plugin that names a hook set nobody defines is a config mistake: say which. */
export function undefinedSetError(plugin: string, set: string): PosternError {
  return new PosternError(
    "POSTERN_PLUGIN_INVALID",
    `${plugin} has handlers for the "${set}" hooks, but no configured plugin runs them (add the plugin that defines them)`,
    { plugin },
  );
}

// Re-exported for hook authors' convenience.
export type { Recipient };
