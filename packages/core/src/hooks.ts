// The plugin contract: hook signatures, how a hook may be declared, and the plugin shape.
// Every hook but `close` is a "first verdict wins" hook; `close` runs on every plugin.
import type { Logger } from "pino";
import type { DnsResolver } from "./dns.ts";
import type { Message } from "./message.ts";
import type { Address, Credentials, Recipient, RouteGroup, Session, Transaction } from "./session.ts";
import type { Verdict } from "./verdict.ts";

/** What each call of a hook gets besides its arguments. */
export interface HookContext {
  /** Aborted when the hook's deadline passes; hand it to fetch, DNS lookups and the like. */
  readonly signal: AbortSignal;
  /** A logger bound to the plugin, the hook and the session (and queue ID once there is one). */
  readonly log: Logger;
}

export type HookOutcome = Verdict | undefined | void;
export type HookReturn = HookOutcome | Promise<HookOutcome>;

export interface Hooks {
  connect(session: Session, context: HookContext): HookReturn;
  secure(session: Session, context: HookContext): HookReturn;
  helo(session: Session, name: string, context: HookContext): HookReturn;
  auth(session: Session, credentials: Credentials, context: HookContext): HookReturn;
  mailFrom(transaction: Transaction, address: Address, context: HookContext): HookReturn;
  rcptTo(transaction: Transaction, recipient: Address, context: HookContext): HookReturn;
  data(transaction: Transaction, message: Message, context: HookContext): HookReturn;
  queue(transaction: Transaction, message: Message, group: RouteGroup, context: HookContext): HookReturn;
  close(session: Session, context: HookContext): void | Promise<void>;
}

export type HookName = keyof Hooks;
/** Hooks whose first verdict ends the chain. */
export type VerdictHookName = Exclude<HookName, "close">;

export type HookOrder = "pre" | "post";

export interface HookOptions<Handler> {
  handler: Handler;
  /** "pre" runs before plugins without an order, "post" after; config order within each. */
  order?: HookOrder;
  /** Deadline for one call; past it the hook answers 451 4.4.3. */
  timeoutMs?: number;
}

export type HookDeclaration<Name extends HookName> = Hooks[Name] | HookOptions<Hooks[Name]>;

export type PluginHooks = { [Name in HookName]?: HookDeclaration<Name> };

/** What a plugin gets in setup(): the server's shared services. */
export interface ServerContext {
  readonly hostname: string;
  readonly logger: Logger;
  readonly resolver: DnsResolver;
  /** Directory for the server's temporary files (the DATA spool). */
  readonly spoolDir: string;
  /** The default deadline of one hook call; plugins keep their own I/O bounds below it. */
  readonly hookTimeoutMs: number;
  /** The plugins in config order, for plugins that cooperate (read-only). */
  readonly plugins: readonly Plugin[];
}

export interface Plugin {
  /** The package name; used in logs, errors and metrics. */
  name: string;
  /** Before listening: open pools, load keys, fail fast on bad setup. */
  setup?(server: ServerContext): void | Promise<void>;
  /** On shutdown, after the listeners closed. */
  close?(): void | Promise<void>;
  hooks: PluginHooks;
}

/** Identity function that checks a plugin literal against the contract. */
export function definePlugin<P extends Plugin>(plugin: P): P {
  return plugin;
}

// Re-exported for hook authors' convenience.
export type { Recipient };
