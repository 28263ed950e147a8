// Runs hooks in plugin order with the combining rule of each kind: `first` for verdict hooks (the
// first verdict ends the chain) and `all` for close. Every call has a deadline and fails closed:
// a throw answers 451 4.3.0, a missed deadline 451 4.4.3, and neither ever accepts.
import type { Logger } from "pino";
import { PosternError } from "./errors.ts";
import type { HookContext, HookName, HookOptions, Hooks, Plugin, VerdictHookName } from "./hooks.ts";
import { defer, isVerdict, type Verdict } from "./verdict.ts";

interface Registered {
  plugin: string;
  handler: (...args: never[]) => unknown;
  timeoutMs: number;
}

export interface HookCallResult {
  verdict: Verdict | undefined;
  /** The plugin whose verdict ended the chain. */
  plugin: string | undefined;
}

type ArgsOf<Name extends HookName> = Hooks[Name] extends (...args: infer A) => unknown
  ? A extends [...infer Head, HookContext]
    ? Head
    : never
  : never;

const hookNames: readonly HookName[] = [
  "connect",
  "secure",
  "helo",
  "auth",
  "mailFrom",
  "rcptTo",
  "data",
  "queue",
  "close",
];
const orderRank = { pre: 0, undefined: 1, post: 2 } as const;
/** What the deadline resolves with; a hook can never return this object. */
const timedOut: unique symbol = Symbol("timed out");

export function isHookName(name: string): name is HookName {
  return (hookNames as readonly string[]).includes(name);
}

export class HookRunner {
  readonly #byHook = new Map<HookName, Registered[]>();
  readonly #logger: Logger;

  constructor(plugins: readonly Plugin[], logger: Logger, defaultTimeoutMs: number) {
    this.#logger = logger;
    for (const name of hookNames) {
      const entries: { registered: Registered; rank: number; index: number }[] = [];
      plugins.forEach((plugin, index) => {
        const declared = plugin.hooks[name] as Hooks[typeof name] | HookOptions<Hooks[typeof name]> | undefined;
        if (declared === undefined) return;
        const options = typeof declared === "function" ? { handler: declared } : declared;
        entries.push({
          registered: {
            plugin: plugin.name,
            handler: options.handler as Registered["handler"],
            timeoutMs: options.timeoutMs ?? defaultTimeoutMs,
          },
          rank: orderRank[String(options.order) as keyof typeof orderRank] ?? 1,
          index,
        });
      });
      entries.sort((a, b) => a.rank - b.rank || a.index - b.index);
      this.#byHook.set(
        name,
        entries.map((entry) => entry.registered),
      );
    }
  }

  /** Plugin names in the order they run for each hook (for `postern check`). */
  order(): Record<HookName, string[]> {
    const out = {} as Record<HookName, string[]>;
    for (const [name, entries] of this.#byHook) out[name] = entries.map((entry) => entry.plugin);
    return out;
  }

  has(hook: HookName): boolean {
    return (this.#byHook.get(hook)?.length ?? 0) > 0;
  }

  /** Runs plugins in order until one returns a verdict. */
  async first<Name extends VerdictHookName>(
    hook: Name,
    args: ArgsOf<Name>,
    logBindings: Record<string, unknown>,
  ): Promise<HookCallResult> {
    for (const registered of this.#byHook.get(hook) ?? []) {
      const verdict = await this.#call(hook, registered, args, logBindings);
      if (verdict !== undefined) return { verdict, plugin: registered.plugin };
    }
    return { verdict: undefined, plugin: undefined };
  }

  /** Runs every plugin; failures are logged and otherwise ignored. */
  async all(hook: "close", args: ArgsOf<"close">, logBindings: Record<string, unknown>): Promise<void> {
    for (const registered of this.#byHook.get(hook) ?? []) {
      await this.#call(hook, registered, args, logBindings);
    }
  }

  async #call(
    hook: HookName,
    registered: Registered,
    args: readonly unknown[],
    logBindings: Record<string, unknown>,
  ): Promise<Verdict | undefined> {
    // The signal and the child logger are made only if the hook asks for them, and the deadline
    // timer only if the hook returns a promise: most hooks answer synchronously, and this runs
    // for every plugin on every command.
    let controller: AbortController | undefined;
    let log: Logger | undefined;
    const parentLogger = this.#logger;
    const logger = () => {
      log ??= parentLogger.child({ ...logBindings, plugin: registered.plugin, hook });
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
    let timer: NodeJS.Timeout | undefined;
    try {
      let outcome: unknown = registered.handler(...([...args, context] as never[]));
      if (outcome !== null && typeof (outcome as PromiseLike<unknown>)?.then === "function") {
        const deadline = new Promise<typeof timedOut>((resolve) => {
          timer = setTimeout(() => resolve(timedOut), registered.timeoutMs);
        });
        outcome = await Promise.race([outcome, deadline]);
      }
      if (outcome === timedOut) {
        controller?.abort(new PosternError("POSTERN_HOOK_TIMEOUT", `${hook} hook timed out`));
        const error = new PosternError(
          "POSTERN_HOOK_TIMEOUT",
          `${registered.plugin} did not answer the ${hook} hook within ${registered.timeoutMs} ms`,
          { plugin: registered.plugin, hook },
        );
        logger().error({ err: error, code: error.code }, error.message);
        return defer("4.4.3", "Timeout while checking the message, try again later");
      }
      if (outcome === undefined || outcome === null) return undefined;
      if (!isVerdict(outcome)) {
        throw new PosternError(
          "POSTERN_HOOK_BAD_VERDICT",
          `${registered.plugin} returned something that is not a verdict from the ${hook} hook; use accept(), reject(), defer() or disconnect()`,
          { plugin: registered.plugin, hook },
        );
      }
      return outcome;
    } catch (cause) {
      const error =
        cause instanceof PosternError && cause.plugin
          ? cause
          : new PosternError(
              "POSTERN_HOOK_FAILED",
              `${registered.plugin} failed in the ${hook} hook: ${cause instanceof Error ? cause.message : String(cause)}`,
              { plugin: registered.plugin, hook, cause },
            );
      logger().error({ err: cause, code: error.code }, error.message);
      return defer("4.3.0", "Temporary local problem, try again later");
    } finally {
      clearTimeout(timer);
    }
  }
}
