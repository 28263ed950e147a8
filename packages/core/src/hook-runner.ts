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
  async first<Name extends HookNameOf<Signatures>>(
    hook: Name,
    args: HookArguments<FunctionOf<Signatures, Name>>,
    bindings: CallBindings,
  ): Promise<HookAnswer<HookResult<FunctionOf<Signatures, Name>>>> {
    const spec = this.#spec(hook, "first") as HookSpec<FunctionOf<Signatures, Name>>;
    for (const handler of this.#byHook.get(hook) ?? []) {
      const result = await this.#call(hook, spec, handler, args as unknown[], bindings);
      if (result !== undefined) return { result, plugin: handler.plugin };
    }
    return { result: spec.whenSilent, plugin: undefined };
  }

  /** Runs every handler ("all" hooks); answers and failures change nothing. */
  async all<Name extends HookNameOf<Signatures>>(
    hook: Name,
    args: HookArguments<FunctionOf<Signatures, Name>>,
    bindings: CallBindings,
  ): Promise<void> {
    const spec = this.#spec(hook, "all") as HookSpec<FunctionOf<Signatures, Name>>;
    for (const handler of this.#byHook.get(hook) ?? []) {
      await this.#call(hook, spec, handler, args as unknown[], bindings);
    }
  }

  /** The hook's spec; running a hook by another rule than its table gives is a bug in the caller. */
  #spec(hook: HookNameOf<Signatures>, combine: "first" | "all"): HookSpec<HookFunction> {
    const spec = this.set.table[hook] as HookSpec<HookFunction>;
    if (spec.combine !== combine) {
      throw new TypeError(`the ${this.set.name} hook ${hook} combines "${spec.combine}", not "${combine}"`);
    }
    return spec;
  }

  async #call<Fn extends HookFunction>(
    hook: keyof Signatures,
    spec: HookSpec<Fn>,
    registered: Handler,
    args: readonly unknown[],
    bindings: CallBindings,
  ): Promise<HookResult<Fn> | undefined> {
    const name = String(hook);
    // The signal and the child logger are made only if the hook asks for them, and the deadline
    // timer only if the hook returns a promise: most hooks answer synchronously, and this runs
    // for every plugin on every command.
    let controller: AbortController | undefined;
    let log: Logger | undefined;
    const parentLogger = this.#logger;
    const logger = () => {
      log ??= parentLogger.child({ ...bindings, plugin: registered.plugin, hook: name });
      return log;
    };
    const context: HookContext = {
      get signal() {
        controller ??= new AbortController();
        return controller.signal;
      },
      get log() {
        return logger();
      },
    };
    const observed = this.#events.observed(hookCompleted);
    const startedAt = observed ? performance.now() : 0;
    let timer: NodeJS.Timeout | undefined;
    let result: HookResult<Fn> | undefined;
    let failure: PosternError | undefined;
    try {
      let outcome: unknown = registered.handler(...args, context);
      if (outcome !== null && typeof (outcome as PromiseLike<unknown>)?.then === "function") {
        const deadline = new Promise<typeof timedOut>((resolve) => {
          timer = setTimeout(() => resolve(timedOut), registered.info.timeoutMs);
        });
        outcome = await Promise.race([outcome, deadline]);
      }
      if (outcome === timedOut) {
        failure = new PosternError(
          "POSTERN_HOOK_TIMEOUT",
          `${registered.plugin} did not answer the ${name} hook within ${registered.info.timeoutMs} ms`,
          { plugin: registered.plugin, hook: name },
        );
        controller?.abort(failure);
        logger().error({ err: failure, code: failure.code }, failure.message);
        result = spec.onTimeout(failure);
      } else if (outcome !== undefined && outcome !== null) {
        const problem = spec.problem(outcome);
        if (problem !== undefined) {
          throw new PosternError(
            "POSTERN_HOOK_BAD_VERDICT",
            `${registered.plugin} returned ${describe(outcome)} from the ${name} hook: ${problem}`,
            { plugin: registered.plugin, hook: name },
          );
        }
        result = outcome as HookResult<Fn>;
      }
    } catch (cause) {
      failure =
        cause instanceof PosternError && cause.plugin
          ? cause
          : new PosternError(
              "POSTERN_HOOK_FAILED",
              `${registered.plugin} failed in the ${name} hook: ${cause instanceof Error ? cause.message : String(cause)}`,
              { plugin: registered.plugin, hook: name, cause },
            );
      logger().error({ err: cause, code: failure.code }, failure.message);
      result = spec.onError(failure);
    } finally {
      clearTimeout(timer);
    }
    if (observed) {
      this.#events.emit(hookCompleted, {
        set: this.set.name,
        hook: name,
        plugin: registered.plugin,
        answer: result,
        error: failure,
        durationMs: performance.now() - startedAt,
        bindings,
      });
    }
    return result;
  }
}

function describe(value: unknown): string {
  if (typeof value !== "object" || value === null) return JSON.stringify(value) ?? typeof value;
  const kind = (value as { kind?: unknown }).kind;
  return kind === undefined ? "an object without a kind" : `a verdict of kind ${JSON.stringify(kind)}`;
}
