// The memory store runs the shared conformance suite, and keeps its bound.
import { describe, expect, it } from "vitest";
import { memoryStore } from "./memory-store.ts";
import { describeGreylistStoreConformance } from "./testing/store-conformance.ts";

describeGreylistStoreConformance("memory", async () => ({ store: memoryStore(), cleanup: async () => undefined }));

describe("memory store bound", () => {
  it("forgets the least recently seen triplets past maxTriplets", async () => {
    const store = memoryStore({ maxTriplets: 2 });
    const timings = { delayMs: 1000, retryWindowMs: 10_000, passedForMs: 100_000, autoAllowAfter: 0 };
    const check = (triplet: string, now: number) => store.check({ triplet, network: "n", now }, timings);
    await check("a", 0);
    await check("b", 0);
    await check("a", 500); // a is early: seen, but not rewritten — b was written last
    await check("c", 600); // over the bound: a goes (oldest written)
    expect(await check("b", 2000)).toMatchObject({ kind: "pass", why: "retried" });
    expect(await check("a", 2000)).toMatchObject({ kind: "defer", why: "new" });
  });
});
