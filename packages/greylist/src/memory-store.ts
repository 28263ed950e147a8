// Greylisting state in this process: two maps, bounded. Entries carry their expiry in the caller's
// time, so a test's clock expires them exactly as Redis's TTLs expire the Redis store's keys.
import type { GreylistDecision, GreylistStore, GreylistTimings, TripletCheck } from "./store.ts";

interface TripletEntry {
  firstSeen: number;
  passed: boolean;
  expires: number;
}

interface NetworkEntry {
  passes: number;
  expires: number;
}

export interface MemoryStoreOptions {
  /** The most triplets kept; the least recently written go first (default 200000). */
  maxTriplets?: number;
}

/** How many checks between sweeps of expired entries. */
const sweepEvery = 1000;

export function memoryStore(options: MemoryStoreOptions = {}): GreylistStore {
  const maxTriplets = options.maxTriplets ?? 200_000;
  // Map order is insertion order: re-inserting on every write keeps the least recently seen first.
  const triplets = new Map<string, TripletEntry>();
  const networks = new Map<string, NetworkEntry>();
  let checks = 0;

  const put = <T>(map: Map<string, T>, key: string, entry: T, max: number) => {
    map.delete(key);
    map.set(key, entry);
    if (map.size > max) map.delete(map.keys().next().value as string);
  };

  const sweep = (now: number) => {
    for (const map of [triplets, networks] as Map<string, { expires: number }>[]) {
      for (const [key, entry] of map) if (entry.expires < now) map.delete(key);
    }
  };

  return {
    kind: "memory",
    where: "memory",
    async check({ triplet, network, now }: TripletCheck, timings: GreylistTimings): Promise<GreylistDecision> {
      if (++checks % sweepEvery === 0) sweep(now);
      if (timings.autoAllowAfter > 0) {
        const known = networks.get(network);
        if (known && known.expires >= now && known.passes >= timings.autoAllowAfter) {
          put(networks, network, { passes: known.passes, expires: now + timings.passedForMs }, maxTriplets);
          return { kind: "pass", why: "network", networkPasses: known.passes };
        }
      }
      const entry = triplets.get(triplet);
      const live = entry !== undefined && entry.expires >= now;
      if (live && entry.passed) {
        put(triplets, triplet, { ...entry, expires: now + timings.passedForMs }, maxTriplets);
        return { kind: "pass", why: "known", firstSeen: entry.firstSeen };
      }
      if (!live) {
        put(triplets, triplet, { firstSeen: now, passed: false, expires: now + timings.retryWindowMs }, maxTriplets);
        return { kind: "defer", why: "new", firstSeen: now, retryAt: now + timings.delayMs };
      }
      if (now < entry.firstSeen + timings.delayMs) {
        return { kind: "defer", why: "early", firstSeen: entry.firstSeen, retryAt: entry.firstSeen + timings.delayMs };
      }
      put(
        triplets,
        triplet,
        { firstSeen: entry.firstSeen, passed: true, expires: now + timings.passedForMs },
        maxTriplets,
      );
      let networkPasses = 0;
      if (timings.autoAllowAfter > 0) {
        const known = networks.get(network);
        networkPasses = (known && known.expires >= now ? known.passes : 0) + 1;
        put(networks, network, { passes: networkPasses, expires: now + timings.passedForMs }, maxTriplets);
      }
      return { kind: "pass", why: "retried", firstSeen: entry.firstSeen, networkPasses };
    },
  };
}
