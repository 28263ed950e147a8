// What /readyz answers: ready when the listeners are bound and every plugin that can tell says it
// can do its job now (its database answers, its queue store reads). A plugin tells by having a
// `ready()` method that resolves when it is ready and rejects (or throws) with the reason when it
// is not; it gets `timeoutMs` to answer. Plugins without one are taken as ready.
import type { Plugin, ServerContext } from "@postern/core";

/** A plugin that can say whether it is ready (outbound, store-postgres). */
export interface ReadinessProbe {
  ready(): Promise<void> | void;
}

export interface ReadinessCheck {
  readonly name: string;
  readonly ok: boolean;
  /** Why not, when not ready. */
  readonly error?: string;
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: readonly ReadinessCheck[];
}

const hasProbe = (plugin: Plugin): plugin is Plugin & ReadinessProbe =>
  typeof (plugin as Partial<ReadinessProbe>).ready === "function";

async function probe(plugin: Plugin & ReadinessProbe, timeoutMs: number): Promise<ReadinessCheck> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([Promise.resolve().then(() => plugin.ready()), deadline]);
    return { name: plugin.name, ok: true };
  } catch (error) {
    return { name: plugin.name, ok: false, error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

export async function readiness(
  context: Pick<ServerContext, "plugins" | "listening">,
  timeoutMs: number,
): Promise<Readiness> {
  const listeners: ReadinessCheck =
    context.listening().length > 0
      ? { name: "listeners", ok: true }
      : { name: "listeners", ok: false, error: "no listener is bound yet" };
  const plugins = await Promise.all(context.plugins.filter(hasProbe).map((plugin) => probe(plugin, timeoutMs)));
  const checks = [listeners, ...plugins];
  return { ready: checks.every((check) => check.ok), checks };
}
