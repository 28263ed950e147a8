// Routing decisions against a real DNS server (the test kit's fake zone) through core's resolver.
import { createEventChannel, createLogger, createResolver, HookRunner } from "@postern/core";
import { type FakeDns, startFakeDns } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OutboundHookHandlers, outboundHooks } from "./delivery-hooks.ts";
import { type OutboundOptions, outboundOptionsSchema } from "./options.ts";
import type { MessageEnvelope } from "./queue/store.ts";
import { Router } from "./routing.ts";

let dns: FakeDns;
beforeAll(async () => {
  dns = await startFakeDns({
    "many.test": { MX: ["20 c.many.test", "10 a.many.test", "10 b.many.test", "30 d.many.test"] },
    "a.many.test": { A: ["192.0.2.1"] },
    "b.many.test": { A: ["192.0.2.2"], AAAA: ["2001:db8::2"] },
    "c.many.test": { A: ["192.0.2.3"] },
    "d.many.test": { A: ["192.0.2.4"] },
    "broken.test": "SERVFAIL",
    "noaddress.test": { TXT: ["only text"] },
    "mxnoaddr.test": { MX: ["10 ghost.mxnoaddr.test"] },
    "relay.example": { A: ["192.0.2.50"] },
  });
});
afterAll(async () => {
  await dns.close();
});

const message: MessageEnvelope = {
  id: "ROUTETEST",
  from: "a@origin.test",
  createdAt: Date.now(),
  size: 10,
  requireTls: false,
  smtpUtf8: false,
  bodyType: "7bit",
  kind: "relay",
};

function router(
  options: OutboundOptions = {},
  hooks: OutboundHookHandlers[] = [],
  isOwnAddress: (address: string, port: number) => boolean = () => false,
): Router {
  const logger = createLogger({ level: "silent" });
  return new Router({
    options: outboundOptionsSchema.parse(options),
    resolver: createResolver({ servers: dns.servers, timeoutMs: 2000, cacheTtlMs: 0 }),
    hooks: new HookRunner(
      outboundHooks,
      hooks.map((declarations, index) => ({ plugin: `test:${index}`, declarations })),
      { logger, events: createEventChannel(logger), defaultTimeoutMs: 2000 },
    ),
    mtaSts: undefined,
    log: logger,
    isOwnAddress,
  });
}

const plan = (r: Router, domain: string) => r.plan({ domain, message, recipients: [] });

describe("routing", () => {
  it("orders MX hosts by preference, shuffles ties, and tries every address of a host", async () => {
    const orders = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const result = await plan(router(), "many.test");
      if (result.kind !== "deliver") throw new Error(`expected hosts, got ${JSON.stringify(result)}`);
      expect(result.source).toBe("mx");
      const names = result.hops.map((hop) => hop.name);
      expect(names.slice(-2)).toEqual(["c.many.test", "d.many.test"]);
      orders.add(names.slice(0, 3).join(","));
      expect(
        result.hops
          .filter((hop) => hop.name === "b.many.test")
          .map((hop) => hop.address)
          .sort(),
      ).toEqual(["192.0.2.2", "2001:db8::2"]);
    }
    // a and b (both preference 10) come first in either order.
    expect(
      [...orders].every((order) =>
        /^(a\.many\.test,b\.many\.test,b|b\.many\.test,b\.many\.test,a|b\.many\.test,a\.many\.test,b)/.test(order),
      ),
    ).toBe(true);
    expect(orders.size).toBeGreaterThan(1);
  });

  it("limits the MX hosts tried", async () => {
    const result = await plan(router({ maxMxHosts: 2 }), "many.test");
    expect(result.kind === "deliver" && new Set(result.hops.map((hop) => hop.name)).size).toBe(2);
  });

  it("defers on DNS failure, bounces on a domain that does not exist or has no address", async () => {
    expect(await plan(router(), "broken.test")).toMatchObject({ kind: "defer", reply: { status: "4.4.3" } });
    expect(await plan(router(), "missing.test")).toMatchObject({ kind: "bounce", reply: { status: "5.1.2" } });
    expect(await plan(router(), "noaddress.test")).toMatchObject({ kind: "bounce", reply: { status: "5.1.2" } });
    // An MX whose host has no address is the domain's problem to fix: wait rather than bounce.
    expect(await plan(router(), "mxnoaddr.test")).toMatchObject({ kind: "defer", reply: { status: "4.4.3" } });
  });

  it("delivers an address literal to that address", async () => {
    expect(await plan(router({ port: 2525 }), "[192.0.2.9]")).toMatchObject({
      kind: "deliver",
      source: "literal",
      hops: [{ address: "192.0.2.9", port: 2525 }],
    });
  });

  it("applies the strictest TLS level of the global, per-domain and route settings", async () => {
    const r = router({
      tls: { level: "opportunistic", domains: { "many.test": "encrypt", "relay.test": "none" } },
      routes: { "relay.test": { host: "relay.example", port: 587, auth: { user: "u", pass: "p" } } },
    });
    const mx = await plan(r, "many.test");
    expect(mx.kind === "deliver" && mx.hops.every((hop) => hop.tls === "encrypt")).toBe(true);
    // Credentials imply a verified peer unless the route says otherwise; "none" for the domain does not weaken it.
    expect(await plan(r, "relay.test")).toMatchObject({
      kind: "deliver",
      source: "static",
      hops: [{ name: "relay.example", address: "192.0.2.50", port: 587, tls: "verify", auth: { user: "u" } }],
    });
  });

  it("lets the first route hook with a decision choose, before static routes and the smarthost", async () => {
    const hooks: OutboundHookHandlers[] = [
      { route: () => undefined },
      {
        route: (context) =>
          context.domain === "hooked.test" ? { type: "bounce", status: "5.7.1", text: "not to them" } : undefined,
      },
      { route: () => ({ type: "mx", domain: "many.test" }) },
    ];
    const r = router(
      { smarthost: { host: "relay.example" }, routes: { "hooked.test": { host: "192.0.2.77" } } },
      hooks,
    );
    expect(await plan(r, "hooked.test")).toMatchObject({
      kind: "bounce",
      reply: { code: 550, status: "5.7.1", text: "not to them" },
    });
    expect(await plan(r, "elsewhere.test")).toMatchObject({ kind: "deliver", source: "mx" });
    const smarthost = await plan(router({ smarthost: { host: "relay.example", port: 2587 } }), "anything.test");
    expect(smarthost).toMatchObject({
      kind: "deliver",
      source: "smarthost",
      hops: [{ address: "192.0.2.50", port: 2587 }],
    });
  });

  it("as a backup MX, uses only the MX hosts preferred over itself, and bounces when it is the best", async () => {
    // We are c.many.test (preference 20): only a and b (10) may take the mail.
    const backup = router({}, [], (address, port) => address === "192.0.2.3" && port === 25);
    const result = await plan(backup, "many.test");
    if (result.kind !== "deliver") throw new Error(`expected hosts, got ${JSON.stringify(result)}`);
    expect(new Set(result.hops.map((hop) => hop.name))).toEqual(new Set(["a.many.test", "b.many.test"]));
    // We are a.many.test, the most preferred: nobody else may be tried, the message loops.
    const primary = router({}, [], (address) => address === "192.0.2.1");
    expect(await plan(primary, "many.test")).toMatchObject({
      kind: "bounce",
      reply: { status: "5.4.6", text: "mail for many.test loops back to myself" },
    });
    // Another port on the same address is another server (a test sink, a second instance).
    const otherPort = router({}, [], (address, port) => address === "192.0.2.1" && port === 2525);
    expect(await plan(otherPort, "many.test")).toMatchObject({ kind: "deliver" });
  });

  it("defers (fail closed) when a route hook throws, instead of choosing a next hop", async () => {
    const r = router({ smarthost: { host: "relay.example" } }, [
      {
        route: () => {
          throw new Error("routing table unavailable");
        },
      },
    ]);
    expect(await plan(r, "anything.test")).toMatchObject({ kind: "defer", reply: { status: "4.3.0" } });
  });
});
