// Source-address pools over real SMTP: a sink listening on 127.0.0.1 sees which address each
// connection came from (its remote address) and the EHLO name given there.
import { ConfigError } from "@postern/core";
import { buildMessage, type FakeDns, startFakeDns } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import outbound from "./index.ts";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

let dns: FakeDns;
let harness: OutboundHarness | undefined;
let sink: MxSink | undefined;

beforeAll(async () => {
  dns = await startFakeDns({
    "src.test": { MX: ["10 mx.src.test"] },
    "other.test": { MX: ["10 mx.src.test"] },
    "mx.src.test": { A: ["127.0.0.1"] },
  });
});
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  await sink?.close();
  sink = undefined;
});
afterAll(async () => {
  await dns.close();
});

const pool = {
  match: { senderDomain: "example.org" },
  addresses: [
    { address: "127.0.0.2", ehlo: "out2.example.org" },
    { address: "127.0.0.3", ehlo: "out3.example.org" },
  ],
};

describe("source-address pools", () => {
  it("connects from the pool's addresses in turn, each with its own EHLO name", async () => {
    sink = await startSink({ host: "127.0.0.1" });
    harness = await start({ sources: [pool] });
    for (let n = 0; n < 4; n++) {
      await harness.server.send({
        from: "news@example.org",
        to: `user${n}@src.test`,
        raw: buildMessage({ subject: `pool ${n}` }),
      });
      // One at a time, so the turns are in order.
      await expect.poll(() => sink!.messages.length, { timeout: 15_000 }).toBe(n + 1);
    }
    const seen = sink.messages.map((message) => `${message.remoteAddress} ${message.ehlo}`);
    expect(seen).toEqual([
      "127.0.0.2 out2.example.org",
      "127.0.0.3 out3.example.org",
      "127.0.0.2 out2.example.org",
      "127.0.0.3 out3.example.org",
    ]);
  });

  it("leaves other senders' mail to the system's address and the plugin's EHLO name", async () => {
    sink = await startSink({ host: "127.0.0.1" });
    harness = await start({ sources: [pool], heloName: "mx.postern.test" });
    await harness.server.send({ from: "someone@origin.test", to: "user@src.test", raw: buildMessage() });
    const received = await sink.next();
    expect(received.remoteAddress).toBe("127.0.0.1");
    expect(received.ehlo).toBe("mx.postern.test");
  });

  it("chooses by recipient domain, the first matching pool winning; a bare address keeps the default EHLO name", async () => {
    sink = await startSink({ host: "127.0.0.1" });
    harness = await start({
      sources: [
        { match: { domain: "other.test" }, addresses: ["127.0.0.4"] },
        { match: { domain: "*" }, addresses: [{ address: "127.0.0.5", ehlo: "bulk.example.org" }] },
      ],
    });
    await harness.server.send({ from: "someone@origin.test", to: "a@other.test", raw: buildMessage() });
    const first = await sink.next();
    await harness.server.send({ from: "someone@origin.test", to: "b@src.test", raw: buildMessage() });
    const second = await sink.next();
    expect([first.remoteAddress, first.ehlo]).toEqual(["127.0.0.4", "mta.postern.test"]);
    expect([second.remoteAddress, second.ehlo]).toEqual(["127.0.0.5", "bulk.example.org"]);
  });

  it("does not use a host the pool has no address of its family for; the mail is deferred", async () => {
    sink = await startSink({ host: "127.0.0.1" });
    harness = await start({ sources: [{ match: { senderDomain: "example.org" }, addresses: ["::1"] }] });
    await harness.server.send({ from: "news@example.org", to: "user@src.test", raw: buildMessage() });
    const deferred = await harness.events.wait("deferred");
    expect(deferred.reply.text).toBe(
      `sources.0 has no IPv4 address to reach mx.src.test [127.0.0.1]:${sink.port} from`,
    );
    expect(sink.connections).toBe(0);
  });

  it("reports a bad pool in one line naming the key", () => {
    const error = (options: Parameters<typeof outbound>[0]) => {
      try {
        outbound(options);
      } catch (caught) {
        expect(caught).toBeInstanceOf(ConfigError);
        return (caught as Error).message;
      }
      throw new Error("no error");
    };
    const messages = [
      error({ sources: [{ addresses: [{ address: "mail.example.org" }] }] }),
      error({ sources: [{ addresses: ["127.0.0.2", "300.1.2.3"] }] }),
      error({ sources: [{ addresses: [] }] }),
      error({ sources: [{ addresses: [{ address: "127.0.0.2", ehlo: "not a name" }] }] }),
      error({ sources: [{ match: { sender: "example.org" }, addresses: ["127.0.0.2"] }] as never }),
    ];
    for (const message of messages) expect(message).not.toContain("\n");
    expect(messages[0]).toBe(
      '@postern/outbound.sources.0.addresses.0.address: expected an IP address such as 192.0.2.10 or 2001:db8::25 (got "mail.example.org")',
    );
    expect(messages[1]).toMatch(
      /^@postern\/outbound\.sources\.0\.addresses\.1: expected an IP address .*\(got "300\.1\.2\.3"\)$/,
    );
    expect(messages[2]).toMatch(/^@postern\/outbound\.sources\.0\.addresses: expected at least one address/);
    expect(messages[3]).toMatch(/^@postern\/outbound\.sources\.0\.addresses\.0\.ehlo: expected a host name/);
    expect(messages[4]).toMatch(/^@postern\/outbound\.sources\.0\.match\.sender: unknown setting/);
  });
});

function start(options: Omit<Parameters<typeof startOutbound>[1], "port">): Promise<OutboundHarness> {
  return startOutbound(dns, { port: sink!.port, ...options });
}
