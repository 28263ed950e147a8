// What the admin pages read and steer, found among the configured plugins by what they can do:
// outbound's queue (a `store` with the QueueStore operations and `flush()`), store-postgres'
// mailboxes and rate-limit's counters (each package's own lookup for a plugin it made).
import type { Plugin } from "@postern/core";
import type { QueueStore } from "@postern/outbound";
import type { RateLimitCounters } from "@postern/rate-limit";
import type { PostgresMailStore } from "@postern/store-postgres";

export interface QueuePlugin {
  readonly store: QueueStore;
  flush(): void;
}

export function isQueuePlugin(plugin: Plugin): plugin is Plugin & QueuePlugin {
  const candidate = plugin as Partial<QueuePlugin>;
  return (
    typeof candidate.flush === "function" &&
    typeof candidate.store?.list === "function" &&
    typeof candidate.store?.retry === "function" &&
    typeof candidate.store?.delete === "function"
  );
}

/** An optional package's module, or undefined when it is not installed. */
async function optional<Module>(name: string): Promise<Module | undefined> {
  try {
    return (await import(name)) as Module;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND") return undefined;
    throw error;
  }
}

export async function mailStoresOf(plugins: readonly Plugin[]): Promise<PostgresMailStore[]> {
  const module = await optional<typeof import("@postern/store-postgres")>("@postern/store-postgres");
  if (!module) return [];
  return plugins.flatMap((plugin) => {
    const store = module.openPostgresMailStoreFor(plugin);
    return store ? [store] : [];
  });
}

export async function rateLimitCountersOf(plugins: readonly Plugin[]): Promise<RateLimitCounters[]> {
  const module = await optional<typeof import("@postern/rate-limit")>("@postern/rate-limit");
  if (!module) return [];
  return plugins.flatMap((plugin) => {
    const counters = module.rateLimitCounters(plugin);
    return counters && counters.store === "redis" ? [counters] : [];
  });
}
