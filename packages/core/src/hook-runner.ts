// Runs the hooks of one hook set in plugin order with the combining rule its table gives. Every
// call has a deadline and fails closed: a throw (or a value that is not an answer) counts as the
// table's `onError`, a missed deadline as its `onTimeout` — for SMTP hooks a 4xx, never an accept.
// Each call is reported on the observer channel (hookCompleted) when someone listens.
import type { Logger } from "pino";
import { hookCompleted } from "./core-events.ts";
import { PosternError } from "./errors.ts";
import type { EventChannel } from "./events.ts";
import type {
  HookArguments,
  HookContext,
  HookDeclarations,
  HookFunction,
  HookOptions,
  HookOrder,
  HookResult,
  HookSet,
  HookSpec,
} from "./hook-set.ts";

/** One plugin's handlers for the set, in config order. */
export interface HookRegistration<Signatures> {
  readonly plugin: string;
  readonly declarations: HookDeclarations<Signatures> | undefined;
}

/** Who runs a hook, in order, with the deadline of each call (for `postern check`). */
export interface HandlerInfo {
  readonly plugin: string;
  readonly order: HookOrder | undefined;
  readonly timeoutMs: number;
}

export interface HookInfo {
  readonly set: string;
  readonly hook: string;
  readonly combine: "first" | "all";
  readonly when: string;
  readonly handlers: readonly HandlerInfo[];
}

export interface HookAnswer<Result> {
  /** The answer that ended the chain, or the table's `whenSilent` (or undefined) when nobody answered. */
  readonly result: Result | undefined;
  /** The plugin whose answer ended the chain; undefined when nobody answered. */
  readonly plugin: string | undefined;
}

/** Fields bound into every log line and event of a call (session id, queue ID …). */
export type CallBindings = Readonly<Record<string, string | undefined>>;

interface Handler {
  readonly plugin: string;
  readonly handler: HookFunction;
  readonly info: HandlerInfo;
}

type FunctionOf<Signatures, Name extends keyof Signatures> = Signatures[Name] extends HookFunction
  ? Signatures[Name]
  : never;

type HookNameOf<Signatures> = keyof Signatures & string;

const orderRank = (order: HookOrder | undefined) => (order === "pre" ? 0 : order === "post" ? 2 : 1);
/** What the deadline resolves with; a hook can never return this object. */
const timedOut: unique symbol = Symbol("timed out");

export interface HookRunnerOptions {
  readonly logger: Logger;
  readonly events: EventChannel;
  /** The deadline of a call when neither the table nor the handler sets one. */
  readonly defaultTimeoutMs: number;
}

export class HookRunner<Signatures> {
  readonly set: HookSet<Signatures>;
  readonly #byHook = new Map<keyof Signatures, Handler[]>();
  readonly #logger: Logger;
  readonly #events: EventChannel;

  constructor(
    set: HookSet<Signatures>,
    registrations: readonly HookRegistration<Signatures>[],
    options: HookRunnerOptions,
  ) {
    this.set = set;
    this.#logger = options.logger;
    this.#events = options.events;
    const known = Object.keys(set.table);
    for (const { plugin, declarations } of registrations) {
      for (const name of Object.keys(declarations ?? {})) {
        if (!known.includes(name)) {
          throw new PosternError(
            "POSTERN_PLUGIN_INVALID",
            `${plugin} declares a ${set.name} hook "${name}" that does not exist (hooks: ${known.join(", ")})`,
            { plugin, hook: name },
          );
        }
      }
    }
    for (const name of known as (keyof Signatures & string)[]) {
      const spec = set.table[name] as HookSpec<HookFunction>;
      const entries: { handler: Handler; rank: number; index: number }[] = [];
      registrations.forEach(({ plugin, declarations }, index) => {
        const declared = declarations?.[name] as HookFunction | HookOptions<HookFunction> | undefined;
        if (declared === undefined) return;
        const declaredAs: HookOptions<HookFunction> = typeof declared === "function" ? { handler: declared } : declared;
        if (typeof declaredAs.handler !== "function") {
          throw new PosternError(
            "POSTERN_PLUGIN_INVALID",
            `${plugin}: the ${set.name} hook "${name}" is neither a function nor { handler }`,
            { plugin, hook: name },
          );
        }
        const timeoutMs = declaredAs.timeoutMs ?? spec.timeoutMs ?? options.defaultTimeoutMs;
        entries.push({
          handler: {
            plugin,
            handler: declaredAs.handler,
            info: { plugin, order: declaredAs.order, timeoutMs },
          },
          rank: orderRank(declaredAs.order),
          index,
        });
      });
      entries.sort((a, b) => a.rank - b.rank || a.index - b.index);
      this.#byHook.set(
        name,
        entries.map((entry) => entry.handler),
      );
    }
  }

  /** Every hook of the set with its rule and its handlers in the order they run. */
  describe(): HookInfo[] {
    return [...this.#byHook].map(([name, handlers]) => {
      const spec = this.set.table[name] as HookSpec<HookFunction>;
      return {
        set: this.set.name,
        hook: String(name),
        combine: spec.combine,
        when: spec.when,
        handlers: handlers.map((entry) => entry.info),
      };
    });
  }

  /** Runs handlers in order until one answers ("first" hooks). */
  first<Name extends HookNameOf<Signatures>>(
    hook: Name,
    args: HookArguments<FunctionOf<Signatures, Name>>,
    bindings: CallBindings,
  ): Promise<HookAnswer<HookResult<FunctionOf<Signatures, Name>>>> {
    try {
      const spec = this.#spec(hook, "first") as HookSpec<FunctionOf<Signatures, Name>>;
      const handlers = this.#byHook.get(hook) ?? [];
      // Most hooks have no handler on most servers (connect, helo, mailFrom …): one shared,
      // already settled answer instead of an async call per command.
      if (handlers.length === 0) return this.#silentAnswer(hook, spec);
      return this.#firstFrom(hook, spec, handlers, 0, args as unknown[], bindings);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The chain from `index` on. A handler that answers synchronously is taken without waiting a
   * turn of the event loop; the chain goes asynchronous only at a handler that returns a promise.
   */
  #firstFrom<Fn extends HookFunction>(
    hook: keyof Signatures & string,
    spec: HookSpec<Fn>,
    handlers: readonly Handler[],
    index: number,
    args: readonly unknown[],
    bindings: CallBindings,
  ): Promise<HookAnswer<HookResult<Fn>>> {
    for (let at = index; at < handlers.length; at++) {
      const handler = handlers[at]!;
      const result = this.#call(hook, spec, handler, args, bindings);
      if (result instanceof Promise) {
        return result.then((answer) =>
          answer !== undefined
            ? { result: answer, plugin: handler.plugin }
            : this.#firstFrom(hook, spec, handlers, at + 1, args, bindings),
        );
      }
      if (result !== undefined) return Promise.resolve({ result, plugin: handler.plugin });
    }
    return this.#silentAnswer(hook, spec);
  }

  readonly #silentAnswers = new Map<keyof Signatures, Promise<HookAnswer<unknown>>>();

  #silentAnswer<Fn extends HookFunction>(
    hook: keyof Signatures,
    spec: HookSpec<Fn>,
  ): Promise<HookAnswer<HookResult<Fn>>> {
    let answer = this.#silentAnswers.get(hook);
    if (!answer) {
      answer = Promise.resolve(Object.freeze({ result: spec.whenSilent, plugin: undefined }));
      this.#silentAnswers.set(hook, answer);
    }
    return answer as Promise<HookAnswer<HookResult<Fn>>>;
  }

  /** Runs every handler ("all" hooks); answers and failures change nothing. */
  all<Name extends HookNameOf<Signatures>>(
    hook: Name,
    args: HookArguments<FunctionOf<Signatures, Name>>,
    bindings: CallBindings,
  ): Promise<void> {
    try {
      const spec = this.#spec(hook, "all") as HookSpec<FunctionOf<Signatures, Name>>;
      const handlers = this.#byHook.get(hook) ?? [];
      if (handlers.length === 0) return settled;
      return this.#allFrom(hook, spec, handlers, 0, args as unknown[], bindings);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #allFrom<Fn extends HookFunction>(
    hook: keyof Signatures & string,
    spec: HookSpec<Fn>,
    handlers: readonly Handler[],
    index: number,
    args: readonly unknown[],
    bindings: CallBindings,
  ): Promise<void> {
    for (let at = index; at < handlers.length; at++) {
      const result = this.#call(hook, spec, handlers[at]!, args, bindings);
      if (result instanceof Promise) {
        return result.then(() => this.#allFrom(hook, spec, handlers, at + 1, args, bindings));
      }
    }
    return settled;
  }

  /** The hook's spec; running a hook by another rule than its table gives is a bug in the caller. */
  #spec(hook: HookNameOf<Signatures>, combine: "first" | "all"): HookSpec<HookFunction> {
    const spec = this.set.table[hook] as HookSpec<HookFunction>;
    if (spec.combine !== combine) {
      throw new TypeError(`the ${this.set.name} hook ${hook} combines "${spec.combine}", not "${combine}"`);
    }
    return spec;
  }

  /**
   * One handler call; synchronous when the handler answers synchronously (most do), a promise
   * only when it returns one. It never throws: a failure is the table's onError answer.
   */
  #call<Fn extends HookFunction>(
    hook: keyof Signatures & string,
    spec: HookSpec<Fn>,
    registered: Handler,
    args: readonly unknown[],
    bindings: CallBindings,
  ): HookResult<Fn> | undefined | Promise<HookResult<Fn> | undefined> {
    // The signal and the child logger are made only if the hook asks for them, and the deadline
    // timer only if the hook returns a promise: this runs for every plugin on every command.
    const context = new CallContext(this.#logger, bindings, registered.plugin, hook);
    const startedAt = this.#events.observed(hookCompleted) ? performance.now() : undefined;
    let outcome: unknown;
    try {
      outcome = registered.handler(...args, context);
    } catch (cause) {
      return this.#failed(hook, spec, registered, context, cause, startedAt);
    }
    if (outcome === null || typeof (outcome as PromiseLike<unknown>)?.then !== "function") {
      return this.#answered(hook, spec, registered, context, outcome, startedAt);
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<typeof timedOut>((resolve) => {
      timer = setTimeout(() => resolve(timedOut), registered.info.timeoutMs);
    });
    return Promise.race([outcome, deadline]).then(
      (settledOutcome) => {
        clearTimeout(timer);
        if (settledOutcome !== timedOut)
          return this.#answered(hook, spec, registered, context, settledOutcome, startedAt);
        const failure = new PosternError(
          "POSTERN_HOOK_TIMEOUT",
          `${registered.plugin} did not answer the ${hook} hook within ${registered.info.timeoutMs} ms`,
          { plugin: registered.plugin, hook },
        );
        CallContext.abort(context, failure);
        context.log.error({ err: failure, code: failure.code }, failure.message);
        return this.#reported(hook, registered, context, spec.onTimeout(failure), failure, startedAt);
      },
      (cause: unknown) => {
        clearTimeout(timer);
        return this.#failed(hook, spec, registered, context, cause, startedAt);
      },
    );
  }

  /** A handler's answer (or nothing), checked against the table. */
  #answered<Fn extends HookFunction>(
    hook: keyof Signatures & string,
    spec: HookSpec<Fn>,
    registered: Handler,
    context: CallContext,
    outcome: unknown,
    startedAt: number | undefined,
  ): HookResult<Fn> | undefined {
    if (outcome === undefined || outcome === null)
      return this.#reported(hook, registered, context, undefined, undefined, startedAt);
    const problem = spec.problem(outcome);
    if (problem !== undefined) {
      const failure = new PosternError(
        "POSTERN_HOOK_BAD_VERDICT",
        `${registered.plugin} returned ${describe(outcome)} from the ${hook} hook: ${problem}`,
        { plugin: registered.plugin, hook },
      );
      return this.#failed(hook, spec, registered, context, failure, startedAt);
    }
    return this.#reported(hook, registered, context, outcome as HookResult<Fn>, undefined, startedAt);
  }

  /** A handler that threw (or rejected, or answered something that is no answer): the table's onError. */
  #failed<Fn extends HookFunction>(
    hook: keyof Signatures & string,
    spec: HookSpec<Fn>,
    registered: Handler,
    context: CallContext,
    cause: unknown,
    startedAt: number | undefined,
  ): HookResult<Fn> | undefined {
    const failure =
      cause instanceof PosternError && cause.plugin
        ? cause
        : new PosternError(
            "POSTERN_HOOK_FAILED",
            `${registered.plugin} failed in the ${hook} hook: ${cause instanceof Error ? cause.message : String(cause)}`,
            { plugin: registered.plugin, hook, cause },
          );
    context.log.error({ err: cause, code: failure.code }, failure.message);
    return this.#reported(hook, registered, context, spec.onError(failure), failure, startedAt);
  }

  /** Reports the call on the observer channel (when observed) and passes its result on. */
  #reported<Result>(
    hook: keyof Signatures & string,
    registered: Handler,
    context: CallContext,
    result: Result,
    failure: PosternError | undefined,
    startedAt: number | undefined,
  ): Result {
    if (startedAt !== undefined) {
      this.#events.emit(hookCompleted, {
        set: this.set.name,
        hook,
        plugin: registered.plugin,
        answer: result,
        error: failure,
        durationMs: performance.now() - startedAt,
        bindings: CallContext.bindingsOf(context),
      });
    }
    return result;
  }
}

/** The context a handler gets: its abort signal and logger, made on first use. */
class CallContext implements HookContext {
  readonly #parent: Logger;
  readonly #bindings: CallBindings;
  readonly #plugin: string;
  readonly #hook: string;
  #controller: AbortController | undefined;
  #log: Logger | undefined;

  constructor(parent: Logger, bindings: CallBindings, plugin: string, hook: string) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#plugin = plugin;
    this.#hook = hook;
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  get log(): Logger {
    this.#log ??= this.#parent.child({ ...this.#bindings, plugin: this.#plugin, hook: this.#hook });
    return this.#log;
  }

  /** Aborts the call's signal (its deadline passed); not part of what a handler sees. */
  static abort(context: CallContext, reason: unknown): void {
    context.#controller?.abort(reason);
  }

  /** The call's bindings, for the runner (not part of what a handler sees). */
  static bindingsOf(context: CallContext): CallBindings {
    return context.#bindings;
  }
}

const settled: Promise<void> = Promise.resolve();

function describe(value: unknown): string {
  if (typeof value !== "object" || value === null) return JSON.stringify(value) ?? typeof value;
  const kind = (value as { kind?: unknown }).kind;
  return kind === undefined ? "an object without a kind" : `a verdict of kind ${JSON.stringify(kind)}`;
}
