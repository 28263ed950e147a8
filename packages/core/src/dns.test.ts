import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeDns, startFakeDns } from "../../testing/src/index.ts";
import { createResolver } from "./dns.ts";

let dns: FakeDns;
beforeAll(async () => {
  dns = await startFakeDns({
    "example.test": {
      A: ["192.0.2.1"],
      MX: ["10 mx1.example.test", { exchange: "mx2.example.test", priority: 20 }],
      TXT: ["v=spf1 -all", "x".repeat(600)],
    },
    "broken.test": "SERVFAIL",
    "slow.test": "TIMEOUT",
    "7.113.0.203.in-addr.arpa": { PTR: ["host.example.test"] },
  });
});
afterAll(() => dns.close());

describe("resolver", () => {
  it("answers in the shape of dns.promises.resolve", async () => {
    const resolver = createResolver({ servers: dns.servers, cacheTtlMs: 0 });
    expect(await resolver.resolve("example.test", "A")).toEqual(["192.0.2.1"]);
    expect(await resolver.resolve("example.test", "MX")).toEqual([
      expect.objectContaining({ exchange: "mx1.example.test", priority: 10 }),
      expect.objectContaining({ exchange: "mx2.example.test", priority: 20 }),
    ]);
    const txt = (await resolver.resolve("example.test", "TXT")) as string[][];
    expect(txt.map((chunks) => chunks.join(""))).toEqual(["v=spf1 -all", "x".repeat(600)]);
    expect(await resolver.reverse("203.0.113.7")).toEqual(["host.example.test"]);
  });

  it("keeps the error codes mailauth relies on", async () => {
    const resolver = createResolver({ servers: dns.servers, cacheTtlMs: 0, timeoutMs: 500 });
    await expect(resolver.resolve("missing.test", "TXT")).rejects.toMatchObject({ code: "ENOTFOUND" });
    await expect(resolver.resolve("example.test", "AAAA")).rejects.toMatchObject({ code: "ENODATA" });
    await expect(resolver.resolve("broken.test", "TXT")).rejects.toMatchObject({ code: "ESERVFAIL" });
    await expect(resolver.resolve("slow.test", "TXT")).rejects.toMatchObject({ code: "ETIMEOUT" });
  });

  it("caches answers and NXDOMAIN, but not failures", async () => {
    const resolver = createResolver({ servers: dns.servers, cacheTtlMs: 60_000, timeoutMs: 500 });
    await resolver.resolve("example.test", "A");
    await resolver.resolve("example.test", "A");
    expect(dns.queries.get("A example.test")).toBe(1 + 1); // one from the uncached test above
    await resolver.resolve("nothing.test", "A").catch(() => undefined);
    await resolver.resolve("nothing.test", "A").catch(() => undefined);
    expect(dns.queries.get("A nothing.test")).toBe(1);
    const before = dns.queries.get("TXT broken.test") ?? 0;
    await resolver.resolve("broken.test", "TXT").catch(() => undefined);
    await resolver.resolve("broken.test", "TXT").catch(() => undefined);
    expect((dns.queries.get("TXT broken.test") ?? 0) - before).toBeGreaterThanOrEqual(2);
  });
});
