// Each plugin's setup() gets a deadline at `postern start`. Core runs setups one after another
// before listening and waits for each as long as it takes; a setup stuck on a path that never
// answers, or a database that swallows packets, would leave the server up but never listening,
// with nothing said. Past the deadline the start fails naming the plugin and its config entry.
//
// The setup is replaced on the plugin object itself rather than on a copy: plugins find each
// other in ServerContext.plugins by identity (and packages keep per-plugin state in WeakMaps).
import { type Plugin, PosternError } from "@postern/core";

export const defaultSetupTimeoutMs = 60_000;

export class SetupTimeoutError extends PosternError {
  constructor(plugin: Plugin, index: number, timeoutMs: number) {
    super(
      "POSTERN_SETUP_TIMEOUT",
      `its setup did not finish within ${timeoutMs / 1000} s (plugins.${index}); something it waits for does not answer — ` +
        "a directory on a network or pseudo file system, a server, a lock — or raise --setup-timeout if it is only slow",
      { plugin: plugin.name },
    );
    this.name = "SetupTimeoutError";
  }
}

function withDeadline<T>(work: Promise<T>, timeoutMs: number, timedOut: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), timeoutMs);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export function limitSetupTime(plugins: readonly Plugin[], timeoutMs: number): void {
  for (const [index, plugin] of plugins.entries()) {
    const setup = plugin.setup;
    if (!setup) continue;
    const limited: NonNullable<Plugin["setup"]> = (server) =>
      withDeadline(
        Promise.resolve().then(() => setup.call(plugin, server)),
        timeoutMs,
        () => new SetupTimeoutError(plugin, index, timeoutMs),
      );
    try {
      plugin.setup = limited;
    } catch {
      // A frozen plugin object keeps its setup as it is, without a deadline.
    }
  }
}
