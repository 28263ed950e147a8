// The one suite every greylist store runs (memory, Redis, a third party's): the same decisions for
// the same sequence of checks at the same (injected) times. No test sleeps: `now` is an argument.
import { createLogger } from "@postern/core";
import { describe, expect, it } from "vitest";
import type { GreylistStore, GreylistTimings, TripletCheck } from "../store.ts";

export interface StoreUnderTest {
  readonly store: GreylistStore;
  /** Removes what the test wrote. */
  cleanup(): Promise<void>;
}

const minute = 60_000;
const day = 86_400_000;
const timings: GreylistTimings = {
  delayMs: 5 * minute,
  retryWindowMs: 2 * day,
  passedForMs: 36 * day,
  autoAllowAfter: 3,
};
const start = Date.UTC(2026, 0, 1, 12, 0, 0);

let serial = 0;
/** A triplet key and network no other test uses (stores may be shared between tests). */
function fresh(network = `198.51.100.${serial % 250}/24:${++serial}`) {
  return { triplet: `t${serial}-${Math.random().toString(36).slice(2)}`, network };
}

export function describeGreylistStoreConformance(name: string, make: () => Promise<StoreUnderTest>): void {
  describe(`${name} greylist store`, () => {
    const withStore = (test: (store: GreylistStore) => Promise<void>) => async () => {
      const under = await make();
      await under.store.open?.(createLogger({ level: "silent" }));
      try {
        await test(under.store);
      } finally {
        await under.cleanup();
      }
    };
    const at = (request: Omit<TripletCheck, "now">, now: number, store: GreylistStore, given = timings) =>
      store.check({ ...request, now }, given);

    it(
      "defers a new triplet until the delay, passes the retry after it, and knows it from then on",
      withStore(async (store) => {
        const triplet = fresh();
        expect(await at(triplet, start, store)).toEqual({
          kind: "defer",
          why: "new",
          firstSeen: start,
          retryAt: start + 5 * minute,
        });
        // An early retry does not restart the delay.
        expect(await at(triplet, start + 4 * minute, store)).toEqual({
          kind: "defer",
          why: "early",
          firstSeen: start,
          retryAt: start + 5 * minute,
        });
        expect(await at(triplet, start + 5 * minute, store)).toEqual({
          kind: "pass",
          why: "retried",
          firstSeen: start,
          networkPasses: 1,
        });
        expect(await at(triplet, start + 6 * minute, store)).toEqual({ kind: "pass", why: "known", firstSeen: start });
      }),
    );

    it(
      "starts over when the retry comes after the retry window",
      withStore(async (store) => {
        const triplet = fresh();
        await at(triplet, start, store);
        const late = start + 2 * day + 1;
        expect(await at(triplet, late, store)).toEqual({
          kind: "defer",
          why: "new",
          firstSeen: late,
          retryAt: late + 5 * minute,
        });
      }),
    );

    it(
      "forgets a passed triplet after passedFor without traffic, and each pass renews it",
      withStore(async (store) => {
        const triplet = fresh();
        await at(triplet, start, store);
        const passed = start + 10 * minute;
        await at(triplet, passed, store);
        // Seen again 30 days later: renewed for another 36 days from then.
        expect((await at(triplet, passed + 30 * day, store)).kind).toBe("pass");
        expect(await at(triplet, passed + 65 * day, store)).toMatchObject({ kind: "pass", why: "known" });
        const forgotten = passed + 65 * day + 36 * day + 1;
        expect(await at(triplet, forgotten, store)).toMatchObject({ kind: "defer", why: "new", firstSeen: forgotten });
      }),
    );

    it(
      "keeps triplets apart: another sender or recipient from the same network is new",
      withStore(async (store) => {
        const first = fresh();
        const second = { triplet: `${first.triplet}-other`, network: first.network };
        await at(first, start, store);
        await at(first, start + 5 * minute, store);
        expect(await at(second, start + 6 * minute, store)).toMatchObject({ kind: "defer", why: "new" });
      }),
    );

    it(
      "allowlists a network after autoAllowAfter passed triplets, until passedFor without traffic",
      withStore(async (store) => {
        const network = fresh().network;
        const triplets = [1, 2, 3].map((n) => ({ triplet: `${network}-${n}`, network }));
        for (const triplet of triplets) await at(triplet, start, store);
        const passes = [];
        for (const triplet of triplets) passes.push(await at(triplet, start + 5 * minute, store));
        expect(
          passes.map((decision) => decision.kind === "pass" && decision.why === "retried" && decision.networkPasses),
        ).toEqual([1, 2, 3]);
        // A triplet never seen passes at once: the network is trusted.
        const unseen = { triplet: `${network}-new`, network };
        expect(await at(unseen, start + 6 * minute, store)).toEqual({ kind: "pass", why: "network", networkPasses: 3 });
        // Without traffic for passedFor the network is forgotten; its passed triplets too.
        const quiet = start + 6 * minute + 36 * day + 1;
        expect(await at({ triplet: `${network}-later`, network }, quiet, store)).toMatchObject({
          kind: "defer",
          why: "new",
        });
      }),
    );

    it(
      "never allowlists a network with autoAllowAfter 0",
      withStore(async (store) => {
        const network = fresh().network;
        const never = { ...timings, autoAllowAfter: 0 };
        for (const n of [1, 2, 3, 4]) {
          const triplet = { triplet: `${network}-${n}`, network };
          await at(triplet, start, store, never);
          expect(await at(triplet, start + 5 * minute, store, never)).toMatchObject({ kind: "pass", why: "retried" });
        }
        expect(await at({ triplet: `${network}-x`, network }, start + 6 * minute, store, never)).toMatchObject({
          kind: "defer",
          why: "new",
        });
      }),
    );

    it(
      "decides one triplet checked many times at once as one first attempt",
      withStore(async (store) => {
        const triplet = fresh();
        const decisions = await Promise.all(Array.from({ length: 20 }, () => at(triplet, start, store)));
        expect(decisions.filter((decision) => decision.kind === "defer" && decision.why === "new")).toHaveLength(1);
        expect(decisions.every((decision) => decision.kind === "defer" && decision.firstSeen === start)).toBe(true);
        const retries = await Promise.all(Array.from({ length: 20 }, () => at(triplet, start + 5 * minute, store)));
        // The retry is counted once: one "retried", the rest "known".
        expect(retries.filter((decision) => decision.kind === "pass" && decision.why === "retried")).toHaveLength(1);
        expect(retries.every((decision) => decision.kind === "pass")).toBe(true);
      }),
    );
  });
}
