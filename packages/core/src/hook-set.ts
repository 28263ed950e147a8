// A hook set is data: for every hook its combining rule, its result when nobody answers, its default
// deadline and what a failing handler counts as. Core defines the SMTP set (`smtpHooks` in
// hooks.ts); other packages define their own (outbound's delivery hooks) with the same function,
// run them with the same runner (hook-runner.ts), and `postern check` lists them all the same way.
import type { Logger } from "pino";
import type { PosternError } from "./errors.ts";

/** What each call of a hook gets besides its arguments. */
export interface HookContext {
  /** Aborted when the hook's deadline passes; hand it to fetch, DNS lookups and the like. */
  readonly signal: AbortSignal;
  /** A logger bound to the plugin, the hook and the session (and queue ID once there is one). */
  readonly log: Logger;
}

// biome-ignore lint/suspicious/noExplicitAny: a hook's arguments are checked by its own signature.
export type HookFunction = (...args: any[]) => unknown;

/** The arguments of a hook without the trailing HookContext. */
export type HookArguments<Fn extends HookFunction> = Parameters<Fn> extends [...infer Head, HookContext] ? Head : never;

/** What a handler answers when it answers: the awaited return value without "nothing". */
export type HookResult<Fn extends HookFunction> = Exclude<Awaited<ReturnType<Fn>>, undefined | void | null>;

/**
 * - "first": handlers run in order until one answers; that answer ends the chain.
 * - "all": every handler runs; answers and failures are ignored (failures are logged).
 */
export type Combine = "first" | "all";

export interface HookSpec<Fn extends HookFunction> {
  readonly combine: Combine;
  /** When the hook runs, in a few words (for `postern check` and the guide). */
  readonly when: string;
  /** The answer when every handler returned nothing (undefined: nothing, the caller decides). */
  readonly whenSilent?: HookResult<Fn>;
  /** Deadline of one call in ms; the server's `limits.hookTimeoutMs` when unset. */
  readonly timeoutMs?: number;
  /** What is wrong with a value a handler returned, or undefined when it is an answer this hook takes. */
  readonly problem: (value: unknown) => string | undefined;
  /** What a handler that threw or returned a wrong value counts as: fail closed. */
  readonly onError: (error: PosternError) => HookResult<Fn> | undefined;
  /** What a handler past its deadline counts as: fail closed. */
  readonly onTimeout: (error: PosternError) => HookResult<Fn> | undefined;
}

/** One spec for every hook of a signature map: a missing entry does not compile. */
export type HookTable<Signatures> = {
  readonly [Name in keyof Signatures]-?: Signatures[Name] extends HookFunction ? HookSpec<Signatures[Name]> : never;
};

export type HookOrder = "pre" | "post";

export interface HookOptions<Handler> {
  handler: Handler;
  /** "pre" runs before plugins without an order, "post" after; config order within each. */
  order?: HookOrder;
  /** Deadline for one call; past it the hook counts as failed (4xx for SMTP hooks). */
  timeoutMs?: number;
}

export type HookDeclaration<Fn> = Fn | HookOptions<Fn>;

/** Handlers of a signature map, each a function or { handler, order, timeoutMs }. */
export type HookDeclarations<Signatures> = { [Name in keyof Signatures]?: HookDeclaration<Signatures[Name]> };

export interface HookSet<Signatures> {
  /** Short name, e.g. "smtp", "outbound"; shown by `postern check`. */
  readonly name: string;
  readonly table: HookTable<Signatures>;
  /** Handlers for this set, to put in a plugin's `handles` list. */
  handlers(declarations: HookDeclarations<Signatures>): SetHandlers<Signatures>;
}

/** A plugin's handlers for one hook set other than core's SMTP hooks. */
export interface SetHandlers<Signatures> {
  readonly set: HookSet<Signatures>;
  readonly declarations: HookDeclarations<Signatures>;
}

// biome-ignore lint/suspicious/noExplicitAny: a list of sets of any signatures.
export type AnyHookSet = HookSet<any>;
// biome-ignore lint/suspicious/noExplicitAny: handlers for sets of any signatures.
export type AnySetHandlers = SetHandlers<any>;

export function defineHookSet<Signatures>(name: string, table: HookTable<Signatures>): HookSet<Signatures> {
  const set: HookSet<Signatures> = {
    name,
    table,
    handlers: (declarations) => ({ set, declarations }),
  };
  return Object.freeze(set);
}
