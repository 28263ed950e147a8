// Fault injection under load: the DNS server that @postern/spf asks goes silent, answers late,
// answers SERVFAIL, and answers truncated (with and without TCP to fall back on) while
// `postern start` takes mail. The policy under test is spf's `temperror: "defer"`: a DNS failure is
// a 451 4.7.24 at MAIL FROM, never a 250 that skipped the check and never a 5xx; an answer that is
// late but inside the deadline, or truncated with TCP working, still passes; and mail flows again
// as soon as DNS answers. The DNS server is this suite's own (support/faulty-dns.ts).
//   pnpm --filter @postern/reliability test:faults
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acknowledgedMore, type FaultLoad, refusedMore, startFaultLoad } from "./support/fault-load.ts";
import { type FaultServer, startFaultServer } from "./support/fault-server.ts";
import { type FaultyDns, startFaultyDns } from "./support/faulty-dns.ts";
import { replySummary } from "./support/reply-summary.ts";
import { checkStored, readMaildir } from "./support/stored-mail.ts";

const recipient = "user@fault.test";
const dnsTimeoutMs = 1000;
let dns: FaultyDns;
let server: FaultServer;
let load: FaultLoad;

beforeAll(async () => {
  dns = await startFaultyDns({ "example.org": { TXT: ["v=spf1 ip4:127.0.0.0/8 -all"] } });
  server = await startFaultServer("dns", (dir) => ({
    // No cache: every transaction asks the server, so a fault is felt at once and its end too.
    dns: { servers: [dns.server], timeoutMs: dnsTimeoutMs, cacheTtlMs: 0 },
    plugins: [
      { package: "@postern/recipients", options: { domains: ["fault.test"] } },
      { package: "@postern/spf", options: { fail: "reject", temperror: "defer", permerror: "defer" } },
      { package: "@postern/store-maildir", options: { root: join(dir, "maildir") } },
    ],
  }));
  load = startFaultLoad({ port: server.port, sessions: 3, recipients: [recipient], tag: "dns" });
  await acknowledgedMore(load, 10, 30_000);
});

afterAll(async () => {
  await load?.stop();
  await server?.cleanup();
  await dns?.close();
});

/** Sets `mode` until `count` more refusals came, then answers again until mail flows. */
async function outage(mode: FaultyDns["mode"]): Promise<number> {
  const before = load.temporary.length;
  dns.mode = mode;
  await refusedMore(load, 3, 30_000);
  dns.mode = { kind: "answer" };
  const refused = load.temporary.length - before;
  await acknowledgedMore(load, 5, 30_000);
  return refused;
}

/** Sets `mode` and expects mail to keep flowing with no refusal. */
async function harmless(mode: FaultyDns["mode"]): Promise<void> {
  const before = load.temporary.length;
  dns.mode = mode;
  await acknowledgedMore(load, 6, 30_000);
  dns.mode = { kind: "answer" };
  expect(load.temporary.slice(before)).toEqual([]);
}

describe("DNS faults under load (spf temperror: defer)", () => {
  it("a silent server: 451 4.7.24 within the DNS deadline, then mail flows again", async () => {
    expect(await outage({ kind: "silent" })).toBeGreaterThan(0);
  });

  it("a slow server: late past the deadline is 4xx; late within it still passes", async () => {
    await outage({ kind: "slow", delayMs: dnsTimeoutMs * 3 });
    await harmless({ kind: "slow", delayMs: 150 });
  });

  it("SERVFAIL: 4xx, then mail flows again", async () => {
    await outage({ kind: "servfail" });
  });

  it("truncated answers: 4xx when TCP is refused too; passes when the TCP fallback works", async () => {
    const tcpBefore = dns.queries.tcp;
    await outage({ kind: "truncated", tcp: false });
    await harmless({ kind: "truncated", tcp: true });
    expect(dns.queries.tcp).toBeGreaterThan(tcpBefore);
  });

  it("stored every acknowledged message exactly as sent, and every refusal was 451 4.7.24 at MAIL", async () => {
    await load.stop();
    const { exit } = await server.stop();
    expect(exit, server.process.output()).toBe(0);
    console.log(`DNS faults: ${replySummary(load)}`);
    expect(load.hangs).toEqual([]);
    expect(load.permanent).toEqual([]);
    for (const refusal of load.temporary) {
      expect(`${refusal.stage} ${refusal.code} ${refusal.text}`).toMatch(/^MAIL 451 4\.7\.24 /);
    }
    const check = checkStored(load, await readMaildir(join(server.dir, "maildir"), recipient), [recipient]);
    expect(check.problems).toEqual([]);
  });
});
