// What one greylisting decision costs in each store: sequential checks (latency) and checks 50 at a
// time (throughput), a mix of new triplets and retries that pass, against the memory store and
// the Redis at REDIS_URL (under a key prefix of its own, removed afterwards).
//   node --conditions=dev-source packages/greylist/bench/stores.ts [checks]
import { loadavg } from "node:os";
import { createLogger } from "@postern/core";
import { deleteRedisKeys, sharedRedisUrl, uniqueRedisPrefix } from "@postern/testing";
import { memoryStore } from "../src/memory-store.ts";
import { redisStore } from "../src/redis-store.ts";
import type { GreylistStore } from "../src/store.ts";

const checks = Number(process.argv[2] ?? 20_000);
const timings = { delayMs: 300_000, retryWindowMs: 172_800_000, passedForMs: 3_110_400_000, autoAllowAfter: 5 };
const start = Date.now();

/** Check i: a first attempt for even i, the retry (after the delay) of the one before for odd i. */
const request = (i: number, run: string) => ({
  triplet: `${run}-${i - (i % 2)}`,
  // A network per triplet: automatic allowlisting is looked at, never reached.
  network: `10.${(i >> 17) & 255}.${(i >> 9) & 255}.${(i >> 1) & 255}/32`,
  now: start + (i % 2) * timings.delayMs,
});

async function measure(store: GreylistStore, label: string): Promise<string> {
  await store.open?.(createLogger({ level: "silent" }));
  let passed = 0;
  const count = (decision: { kind: string }) => {
    if (decision.kind === "pass") passed++;
  };
  let t = performance.now();
  for (let i = 0; i < checks; i++) count(await store.check(request(i, "seq"), timings));
  const sequential = ((performance.now() - t) * 1000) / checks;
  t = performance.now();
  for (let i = 0; i < checks; i += 100) {
    // pairs stay in order: the first attempt of a triplet is checked before its retry
    await Promise.all(
      Array.from({ length: 50 }, async (_, k) => {
        count(await store.check(request(i + 2 * k, "par"), timings));
        count(await store.check(request(i + 2 * k + 1, "par"), timings));
      }),
    );
  }
  const rate = checks / ((performance.now() - t) / 1000);
  await store.close?.();
  // Every retry passes, every first attempt is deferred: anything else is a wrong figure.
  if (passed !== checks) throw new Error(`${label}: ${passed} of ${checks} retries passed`);
  return `| ${label} | ${sequential.toFixed(1)} µs | ${Math.round(rate).toLocaleString("en")} checks/s |`;
}

const prefix = uniqueRedisPrefix("greylist:bench");
const rows = [await measure(memoryStore(), "memory")];
try {
  rows.push(await measure(redisStore({ url: sharedRedisUrl, keyPrefix: prefix }), `Redis (${sharedRedisUrl})`));
} finally {
  await deleteRedisKeys(prefix);
}
console.log(
  [
    `${new Date().toISOString()}: ${checks} checks per mode, load average ${loadavg()
      .map((v) => v.toFixed(2))
      .join(" ")}`,
    "",
    "| store | one check, sequential | 50 at a time |",
    "| --- | --- | --- |",
    ...rows,
  ].join("\n"),
);
