// A cache in front of a lookup backend: answers are kept for `ttlMs`, misses ("unknown") for
// `negativeTtlMs` — a spammer's dictionary attack must not turn into one directory query per
// guessed name — and failures are never kept, so a directory that comes back is asked again at
// once. Concurrent lookups of one address share one query. Bounded, least recently used out first.
import type { LookupAddress, Resolution, Resolver } from "./resolution.ts";

export interface LookupCacheOptions {
  /** How long a found mailbox or expansion is kept (default 60 s). */
  ttlMs?: number;
  /** How long an "unknown" is kept (default 30 s; 0 = not cached). */
  negativeTtlMs?: number;
  /** Entries kept at most (default 10,000). */
  maxEntries?: number;
  /** The clock (tests move it). */
  now?: () => number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  size: number;
}

export interface CachedResolver extends Resolver {
  stats(): CacheStats;
  /** Forgets every entry (after the directory changed). */
  clear(): void;
}

export function cachedResolver(resolver: Resolver, options: LookupCacheOptions = {}): CachedResolver {
  const ttlMs = options.ttlMs ?? 60_000;
  const negativeTtlMs = options.negativeTtlMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { answer: Resolution; expires: number }>();
  const inFlight = new Map<string, Promise<Resolution>>();
  const stats = { hits: 0, misses: 0 };

  const remember = (key: string, answer: Resolution) => {
    const ttl = answer.kind === "unknown" ? negativeTtlMs : answer.kind === "tempfail" ? 0 : ttlMs;
    if (ttl <= 0) return;
    entries.delete(key);
    entries.set(key, { answer, expires: now() + ttl });
    while (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
  };

  return {
    name: resolver.name,
    async resolve(address: LookupAddress): Promise<Resolution> {
      const key = address.address;
      const entry = entries.get(key);
      if (entry && entry.expires > now()) {
        stats.hits++;
        // Map order is the eviction order: a hit moves the entry to the young end.
        entries.delete(key);
        entries.set(key, entry);
        return entry.answer;
      }
      if (entry) entries.delete(key);
      const pending = inFlight.get(key);
      if (pending) {
        stats.hits++;
        return pending;
      }
      stats.misses++;
      const lookup = resolver.resolve(address).then((answer) => {
        remember(key, answer);
        return answer;
      });
      inFlight.set(key, lookup);
      try {
        return await lookup;
      } finally {
        inFlight.delete(key);
      }
    },
    stats: () => ({ ...stats, size: entries.size }),
    clear: () => entries.clear(),
    ...(resolver.close ? { close: () => resolver.close!() } : {}),
  };
}
