import { accept, ConfigError, type Plugin, parseIpAddress, reversedName } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  type FakeDns,
  memoryQueue,
  type SendError,
  startFakeDns,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import dnsbl, { type DnsblOptions, type DnsblResult, dnsblResult } from "./index.ts";

// Test clients connect from 127.0.0.1, so every list is asked about 1.0.0.127.<zone>.
const client = "1.0.0.127";

let dns: FakeDns;
let server: TestServer | undefined;

beforeAll(async () => {
  dns = await startFakeDns({
    [`${client}.listed.test`]: { A: ["127.0.0.2"], TXT: ["Listed for spam runs, see https://listed.test/lookup"] },
    [`${client}.also-listed.test`]: { A: ["127.0.0.4"] },
    [`${client}.pbl.test`]: { A: ["127.0.0.10"] },
    [`${client}.broken.test`]: "SERVFAIL",
    [`${client}.slow.test`]: "TIMEOUT",
    [`${client}.refusing.test`]: { A: ["127.255.255.254"] },
    [`${client}.wildcard.test`]: { A: ["198.51.100.7"] },
    // clean.test has no entry: NXDOMAIN
  });
});
afterAll(async () => {
  await dns.close();
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** Reads the result another plugin would see, from its own queue hook. */
function resultReader(): { plugin: Plugin; seen: (DnsblResult | undefined)[] } {
  const seen: (DnsblResult | undefined)[] = [];
  return {
    seen,
    plugin: {
      name: "test:reads-dnsbl",
      hooks: {
        queue(transaction) {
          seen.push(transaction.session.results.get(dnsblResult));
          return undefined;
        },
      },
    },
  };
}

async function start(options: DnsblOptions, extra: Plugin[] = []) {
  const queue = memoryQueue();
  // dnsbl comes after the recipient plugin on purpose: its rcptTo hook runs "pre" anyway.
  server = await startTestServer({ plugins: [claimRecipients(), dnsbl(options), ...extra, queue.plugin], dns });
  return { server, queue };
}

async function refusal(promise: Promise<unknown>): Promise<SendError> {
  const error = await promise.then(
    () => undefined,
    (caught: SendError) => caught,
  );
  if (!error) throw new Error("the message was accepted");
  return error;
}

function headerOf(bytes: Buffer): string {
  const match = /^X-Postern-DNSBL: (.*(?:\r\n\t.*)*)\r\n/m.exec(bytes.toString());
  if (!match) throw new Error(`no X-Postern-DNSBL field in:\n${bytes.toString()}`);
  return match[1]!.replace(/\r\n\t/g, " ");
}

describe("listed clients", () => {
  it("refuses at RCPT with 550 5.7.1, naming the list and its TXT reason", async () => {
    const { server } = await start({ zones: ["listed.test"] });
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toBe(
      "550 5.7.1 Client 127.0.0.1 is listed by listed.test: Listed for spam runs, see https://listed.test/lookup",
    );
    expect(dns.queries.get(`A ${client}.listed.test`)).toBeGreaterThan(0);
  });

  it("still accepts mail for postmaster, so a listed sender can ask to be delisted", async () => {
    const { server, queue } = await start({ zones: ["listed.test"] });
    await server.send({ to: "postmaster@localhost", raw: buildMessage() });
    expect(headerOf(queue.messages[0]!.bytes)).toContain("dnsbl=listed ip=127.0.0.1 score=1 threshold=1");
  });

  it('with action "defer" answers 451 4.7.1 instead', async () => {
    const { server } = await start({ zones: ["listed.test"], action: "defer" });
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toMatch(/^451 4\.7\.1 Client 127\.0\.0\.1 is listed by listed\.test/);
  });

  it('with action "accept" only records the listing', async () => {
    const { server, queue } = await start({ zones: ["listed.test"], action: "accept" });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(headerOf(queue.messages[0]!.bytes)).toBe(
      "mx.test; dnsbl=listed ip=127.0.0.1 score=1 threshold=1; listed.test=listed (127.0.0.2; weight 1)",
    );
  });

  it("never refuses an authenticated session (submission from a dynamic address)", async () => {
    const login: Plugin = { name: "test:login", hooks: { auth: () => accept() } };
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [login, claimRecipients(), dnsbl({ zones: ["listed.test"] }), queue.plugin],
      dns,
      config: { listeners: [{ port: 1, auth: "optional", allowInsecureAuth: true }] },
    });
    await server.send({ to: "user@localhost", raw: buildMessage(), auth: { user: "alice", pass: "secret" } });
    expect(queue.messages).toHaveLength(1);
  });
});

describe("weights and thresholds", () => {
  it("adds the weights of the lists naming the client and compares the sum with the threshold", async () => {
    const zones = [{ zone: "listed.test", weight: 2 }, { zone: "also-listed.test", weight: 1.5 }, "clean.test"];
    const reader = resultReader();
    let { server, queue } = await start({ zones, threshold: 4 }, [reader.plugin]);
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(reader.seen[0]).toMatchObject({ status: "clean", score: 3.5, threshold: 4 });
    expect(reader.seen[0]?.zones.map((zone) => [zone.zone, zone.status, zone.weight])).toEqual([
      ["listed.test", "listed", 2],
      ["also-listed.test", "listed", 1.5],
      ["clean.test", "clean", 0],
    ]);
    expect(headerOf(queue.messages[0]!.bytes)).toBe(
      "mx.test; dnsbl=clean ip=127.0.0.1 score=3.5 threshold=4; listed.test=listed (127.0.0.2; weight 2); also-listed.test=listed (127.0.0.4; weight 1.5); clean.test=clean",
    );
    await server.stop();

    ({ server, queue } = await start({ zones, threshold: 3.5 }));
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toMatch(/^550 5\.7\.1 Client 127\.0\.0\.1 is listed by listed\.test, also-listed\.test: /);
  });

  it("counts only the answers given in codes, each with its own weight", async () => {
    const reader = resultReader();
    const { server } = await start(
      {
        zones: [
          { zone: "pbl.test", codes: { "127.0.0.2": 3 } },
          { zone: "listed.test", codes: { "127.0.0.2": 0.5 } },
        ],
      },
      [reader.plugin],
    );
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(reader.seen[0]).toMatchObject({
      status: "clean",
      score: 0.5,
      zones: [
        { zone: "pbl.test", status: "clean", answers: ["127.0.0.10"], weight: 0 },
        {
          zone: "listed.test",
          status: "listed",
          weight: 0.5,
          reason: "Listed for spam runs, see https://listed.test/lookup",
        },
      ],
    });
  });

  it("lets a negative weight (a DNS allowlist) offset a listing", async () => {
    const { server, queue } = await start({
      zones: [
        { zone: "listed.test", weight: 1 },
        { zone: "also-listed.test", weight: -1 },
      ],
    });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(headerOf(queue.messages[0]!.bytes)).toContain("dnsbl=clean ip=127.0.0.1 score=0 threshold=1");
  });
});

describe("allowlist", () => {
  it("never looks up allowlisted clients", async () => {
    const before = dns.queries.get(`A ${client}.listed.test`) ?? 0;
    const { server, queue } = await start({ zones: ["listed.test"], allowlist: ["192.0.2.1", "127.0.0.0/8"] });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(dns.queries.get(`A ${client}.listed.test`) ?? 0).toBe(before);
    expect(headerOf(queue.messages[0]!.bytes)).toBe("mx.test; dnsbl=allowlisted ip=127.0.0.1 score=0 threshold=1");
  });
});

describe("DNS errors", () => {
  it("by default never block mail, and are recorded", async () => {
    const { server, queue } = await start({ zones: ["broken.test", "refusing.test", "wildcard.test", "clean.test"] });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(headerOf(queue.messages[0]!.bytes)).toBe(
      "mx.test; dnsbl=error ip=127.0.0.1 score=0 threshold=1; broken.test=error (ESERVFAIL); refusing.test=error (query refused by the list 127.255.255.254); wildcard.test=error (unexpected answer 198.51.100.7); clean.test=clean",
    );
  });

  it("count a list that never answers as an error once the resolver's deadline passes", async () => {
    const reader = resultReader();
    const { server } = await start({ zones: ["slow.test"] }, [reader.plugin]);
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(reader.seen[0]?.zones).toEqual([
      { zone: "slow.test", status: "error", answers: [], weight: 0, error: "ETIMEOUT" },
    ]);
  });

  it('with onDnsError "defer" answer 451 4.4.3', async () => {
    const { server } = await start({ zones: ["broken.test", "clean.test"], onDnsError: "defer" });
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toBe("451 4.4.3 Blocklist lookup failed (broken.test), try again later");
  });

  it("do not save a client that is listed anyway", async () => {
    const { server } = await start({ zones: ["broken.test", "listed.test"] });
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.responseCode).toBe(550);
  });
});

describe("the header field", () => {
  it("replaces a field of the same name the sender wrote, and can be renamed or turned off", async () => {
    const forged = buildMessage({ headers: { "X-Postern-DNSBL": "mx.test; dnsbl=clean" } });
    let { server, queue } = await start({ zones: ["clean.test"] });
    await server.send({ to: "user@localhost", raw: forged });
    const text = queue.messages[0]!.bytes.toString();
    expect(text.match(/^X-Postern-DNSBL:/gm)).toHaveLength(1);
    expect(headerOf(queue.messages[0]!.bytes)).toBe(
      "mx.test; dnsbl=clean ip=127.0.0.1 score=0 threshold=1; clean.test=clean",
    );
    await server.stop();

    ({ server, queue } = await start({ zones: ["clean.test"], header: false }));
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(queue.messages[0]!.bytes.toString()).not.toContain("DNSBL");
  });
});

describe("options", () => {
  it("names the offending key", () => {
    expect(() => dnsbl({ zones: [] })).toThrow(ConfigError);
    expect(() => dnsbl({ zones: [] })).toThrow(/^@postern\/dnsbl\.zones: expected at least one zone/);
    expect(() => dnsbl({ zones: ["bl.test"], allowlist: ["10.0.0.0/33"] })).toThrow(/^@postern\/dnsbl\.allowlist\.0: /);
    expect(() => dnsbl({ zones: [{ zone: "bl.test", codes: { "10.0.0.1": 1 } }] })).toThrow(
      /^@postern\/dnsbl\.zones\.0\.codes\.10\.0\.0\.1: expected an answer such as "127\.0\.0\.2"/,
    );
    expect(() => dnsbl({ zones: ["bl.test", "not a zone"] })).toThrow(
      '@postern/dnsbl.zones.1: expected a DNS zone such as "zen.spamhaus.org" (got "not a zone")',
    );
    expect(() => dnsbl({ zones: [{ zone: "bl.test", weight: "2" as never }] })).toThrow(
      /^@postern\/dnsbl\.zones\.0\.weight: /,
    );
  });
});

describe("query names", () => {
  it("reverses IPv4 by octet and IPv6 by nibble (RFC 5782), and unwraps IPv4-mapped addresses", () => {
    expect(reversedName(parseIpAddress("192.0.2.99")!, "bl.test")).toBe("99.2.0.192.bl.test");
    expect(reversedName(parseIpAddress("::ffff:192.0.2.99")!, "bl.test")).toBe("99.2.0.192.bl.test");
    expect(reversedName(parseIpAddress("2001:db8::1")!, "bl.test")).toBe(
      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test",
    );
  });
});
