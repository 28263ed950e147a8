// The cache's own rules, in front of a resolver that counts its calls (a stand-in for a backend's
// answers, not for a server: every backend runs the conformance suite against its real server).
import { describe, expect, it } from "vitest";
import { DirectoryError } from "./directory-error.ts";
import { cachedResolver } from "./lookup-cache.ts";
import type { Resolution, Resolver } from "./resolution.ts";
import { lookupAddress } from "./resolution.ts";

const at = (text: string) => lookupAddress(text)!;

interface CountingResolver extends Resolver {
  readonly calls: string[];
  /** Holds every answer until `release`. */
  hold(): void;
  release(): void;
}

function counting(answer: (address: string) => Resolution): CountingResolver {
  const calls: string[] = [];
  let release: () => void = () => {};
  let gate = Promise.resolve();
  return {
    name: "counting",
    calls,
    hold() {
      gate = new Promise((resolve) => {
        release = resolve;
      });
    },
    release: () => release(),
    async resolve(address) {
      calls.push(address.address);
      await gate;
      return answer(address.address);
    },
  };
}

describe("lookup cache", () => {
  it("shares one query among concurrent lookups of one address", async () => {
    const backend = counting(() => ({ kind: "mailbox", mailbox: "alice@example.com" }));
    backend.hold();
    const cache = cachedResolver(backend);
    const pending = Promise.all([1, 2, 3].map(() => cache.resolve(at("alice@example.com"))));
    backend.release();
    expect((await pending).map((answer) => answer.kind)).toEqual(["mailbox", "mailbox", "mailbox"]);
    expect(backend.calls).toEqual(["alice@example.com"]);
  });

  it("never keeps a failure, and evicts the least recently used entry past maxEntries", async () => {
    let failing = true;
    const backend = counting((address) =>
      failing
        ? { kind: "tempfail", cause: new DirectoryError("RECIPIENTS_LOOKUP_FAILED", "counting", "down") }
        : { kind: "mailbox", mailbox: address },
    );
    const cache = cachedResolver(backend, { maxEntries: 2 });
    expect((await cache.resolve(at("a@example.com"))).kind).toBe("tempfail");
    failing = false;
    expect((await cache.resolve(at("a@example.com"))).kind).toBe("mailbox");
    await cache.resolve(at("b@example.com"));
    await cache.resolve(at("a@example.com")); // a is now the most recently used
    await cache.resolve(at("c@example.com")); // evicts b
    await cache.resolve(at("a@example.com"));
    await cache.resolve(at("b@example.com"));
    expect(backend.calls).toEqual([
      "a@example.com",
      "a@example.com",
      "b@example.com",
      "c@example.com",
      "b@example.com",
    ]);
    expect(cache.stats()).toEqual({ hits: 2, misses: 5, size: 2 });
  });
});
