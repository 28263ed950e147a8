// What the hooks need from a place to keep counts. Windowed counts (connections, messages,
// recipients, AUTH failures, bytes per window) are rate-limiter-flexible limiters; concurrent
// connections are a gauge, which a windowed counter cannot be: a slot is held for as long as a
// connection lasts and must be given back exactly once, and a refused attempt must take nothing.
import type { Logger } from "@postern/core";
import type { ResolvedRule } from "./options.ts";

export interface WindowCounter {
  /** Adds `points` to the key's count in its window; false when the count is then over the limit. */
  consume(key: string, points: number): Promise<boolean>;
  /** Takes `points` back, for a refusal that should not use up the allowance (a refused byte count). */
  reward(key: string, points: number): Promise<void>;
}

export interface ConnectionGauge {
  /** Takes one slot for the key; false (taking nothing) when all slots are taken. */
  acquire(key: string): Promise<boolean>;
  /** Gives back a slot taken by acquire(). */
  release(key: string): Promise<void>;
}

export interface Backend {
  readonly kind: "memory" | "redis";
  counter(rule: ResolvedRule): WindowCounter;
  gauge(rule: ResolvedRule): ConnectionGauge;
  /** Connects (never throws: an unreachable store is an outage handled per request). */
  open(log: Logger): Promise<void>;
  /** Resolves while the store answers (Redis: PING), rejects with why not. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
