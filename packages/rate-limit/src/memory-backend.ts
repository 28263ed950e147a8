// Counters in this process's memory: the default, for a single node. Windowed counts use
// rate-limiter-flexible's memory limiter (expired keys are dropped by its timers); the gauge is a
// Map, exact because JavaScript runs one thing at a time.
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { Backend, ConnectionGauge, WindowCounter } from "./backend.ts";
import type { ResolvedRule } from "./options.ts";

/** Wraps a rate-limiter-flexible limiter: a RateLimiterRes rejection means "over the limit". */
export function limiterCounter(limiter: {
  consume(key: string, points: number): Promise<unknown>;
  reward(key: string, points: number): Promise<unknown>;
}): WindowCounter {
  return {
    async consume(key, points) {
      try {
        await limiter.consume(key, points);
        return true;
      } catch (error) {
        if (error instanceof RateLimiterRes) return false;
        throw error;
      }
    },
    async reward(key, points) {
      await limiter.reward(key, points);
    },
  };
}

function memoryGauge(max: number): ConnectionGauge {
  const slots = new Map<string, number>();
  return {
    async acquire(key) {
      const taken = slots.get(key) ?? 0;
      if (taken >= max) return false;
      slots.set(key, taken + 1);
      return true;
    },
    async release(key) {
      const taken = (slots.get(key) ?? 0) - 1;
      if (taken > 0) slots.set(key, taken);
      else slots.delete(key);
    },
  };
}

export function memoryBackend(): Backend {
  return {
    kind: "memory",
    async ping() {},
    counter(rule: ResolvedRule) {
      return limiterCounter(
        new RateLimiterMemory({ points: rule.count, duration: rule.windowSeconds ?? 0, keyPrefix: rule.name }),
      );
    },
    gauge(rule: ResolvedRule) {
      return memoryGauge(rule.count);
    },
    async open() {},
    async close() {},
  };
}
