// Delivery over real SMTP: mail accepted by a Postern server with route "relay" is queued and
// delivered to smtp-server sinks on 127.0.10.x, which the fake DNS zone names as MX hosts.
import { accept, type Plugin } from "@postern/core";
import { buildMessage, type FakeDns, memoryQueue, startFakeDns } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { outboundHooks } from "./delivery-hooks.ts";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.10";
let dns: FakeDns;
let harness: OutboundHarness | undefined;
const sinks: MxSink[] = [];

/** Sinks on one port (the MX port is one option); the first picks it. */
async function sinksOnOnePort(...specs: Parameters<typeof startSink>[0][]): Promise<MxSink[]> {
  const started: MxSink[] = [];
  for (const spec of specs) {
    const sink = await startSink({ ...spec, port: started[0]?.port ?? 0 });
    started.push(sink);
    sinks.push(sink);
  }
  return started;
}

beforeAll(async () => {
  dns = await startFakeDns({
    "example.test": { MX: ["10 mx1.example.test"] },
    "mx1.example.test": { A: [`${net}.2`] },
    "origin.test": { MX: ["10 mx.origin.test"] },
    "mx.origin.test": { A: [`${net}.3`] },
    "nullmx.test": { MX: [{ priority: 0, exchange: "." }] },
    "fallback.test": { MX: ["10 dead.fallback.test", "20 mx2.fallback.test"] },
    "dead.fallback.test": { A: [`${net}.9`] },
    "mx2.fallback.test": { A: [`${net}.4`] },
    "implicit.test": { A: [`${net}.5`] },
  });
});
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  for (const sink of sinks.splice(0)) await sink.close();
});
afterAll(async () => {
  await dns.close();
});

describe("delivery to MX hosts", () => {
  it("delivers to the MX, the stored bytes unchanged, and removes the message from the queue", async () => {
    const [mx] = await sinksOnOnePort({ host: `${net}.2` });
    harness = await startOutbound(dns, { port: mx!.port });
    const raw = buildMessage({ subject: "outbound 1", to: "alice@example.test" });
    const sent = await harness.server.send({ from: "sender@origin.test", to: "alice@example.test", raw });
    const queueId = /queued as (\S+)/.exec(sent.response)![1]!;
    const delivered = await harness.events.wait("delivered");
    expect(delivered.message.id).toBe(queueId);
    expect(delivered.reply).toMatchObject({ code: 250, status: "2.0.0" });
    expect(delivered.reply.remote).toBe(`mx1.example.test [${net}.2]:${mx!.port}`);
    const received = await mx!.next();
    expect(received).toMatchObject({ from: "sender@origin.test", to: ["alice@example.test"] });
    // What the sink got is what Postern accepted: its Received field, then the original bytes.
    expect(received.bytes.toString()).toMatch(/^Received: from client\.test /);
    expect(received.bytes.subarray(received.bytes.length - raw.length).equals(raw)).toBe(true);
    await expect.poll(() => harness!.plugin.store.get(queueId)).toBeUndefined();
  });

  it("retries a recipient refused with 4xx and delivers it on the next attempt", async () => {
    const [mx] = await sinksOnOnePort({
      host: `${net}.2`,
      rcpt: (address, seen) =>
        address === "later@example.test" && seen === 1
          ? { code: 451, message: "4.2.1 Mailbox busy, try later" }
          : undefined,
    });
    harness = await startOutbound(dns, { port: mx!.port });
    await harness.server.send({ from: "sender@origin.test", to: "later@example.test", raw: buildMessage() });
    const deferred = await harness.events.wait("deferred");
    expect(deferred.reply).toMatchObject({ code: 451, status: "4.2.1", text: "Mailbox busy, try later" });
    expect(deferred.attempts).toBe(1);
    expect(deferred.nextAttemptAt).toBeGreaterThan(Date.now() - 1_000);
    const delivered = await harness.events.wait("delivered");
    expect(delivered.attempts).toBe(2);
    expect(mx!.messages).toHaveLength(1);
  });

  it("bounces a 5xx recipient with an RFC 3464 report to the sender, delivering the others", async () => {
    const [mx, origin] = await sinksOnOnePort(
      {
        host: `${net}.2`,
        rcpt: (address) =>
          address === "nobody@example.test" ? { code: 550, message: "5.1.1 No such user here" } : undefined,
      },
      { host: `${net}.3` },
    );
    harness = await startOutbound(dns, { port: mx!.port });
    const raw = buildMessage({ subject: "Quarterly figures", to: "alice@example.test, nobody@example.test" });
    await harness.server.send({ from: "sender@origin.test", to: ["alice@example.test", "nobody@example.test"], raw });
    const bounced = await harness.events.wait("bounced");
    expect(bounced.recipient.address).toBe("nobody@example.test");
    expect(bounced.reply).toMatchObject({ code: 550, status: "5.1.1" });
    expect(bounced.dsnId).toMatch(/^[0-9A-Z]{20}$/);
    await harness.events.wait("delivered", (event) => event.recipient.address === "alice@example.test");
    expect((await mx!.next()).to).toEqual(["alice@example.test"]);

    const report = await origin!.next();
    expect(report.from).toBe(""); // the null sender: a report never causes another
    expect(report.to).toEqual(["sender@origin.test"]);
    const text = report.bytes.toString();
    expect(text).toMatch(/^From: Mail Delivery System <MAILER-DAEMON@mta\.postern\.test>\r\n/m);
    expect(text).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m);
    expect(text).toMatch(/^Auto-Submitted: auto-replied\r$/m);
    expect(text).toMatch(/^Reporting-MTA: dns; mta\.postern\.test\r$/m);
    expect(text).toMatch(/^Final-Recipient: rfc822; nobody@example\.test\r$/m);
    expect(text).toMatch(/^Action: failed\r$/m);
    expect(text).toMatch(/^Status: 5\.1\.1\r$/m);
    expect(text).toMatch(/^Remote-MTA: dns; mx1\.example\.test\r$/m);
    expect(text).toMatch(/^Diagnostic-Code: smtp; 550 5\.1\.1 No such user here\r$/m);
    expect(text).not.toMatch(/alice@example\.test>:/); // the delivered recipient is not reported
    // The whole original message is returned (no RET=HDRS, and it is small).
    expect(text).toMatch(/^Content-Type: message\/rfc822\r$/m);
    expect(text).toContain("Subject: Quarterly figures");
    expect(text).toContain("Hello from the Postern test kit.");
    expect(text).toMatch(/--=_postern_[0-9a-f]+--\r\n$/);
  });

  it("stores the report to a local sender locally, even with a smarthost for everything else", async () => {
    const [smarthost] = await sinksOnOnePort({
      host: `${net}.6`,
      rcpt: (address) =>
        address === "nobody@example.test" ? { code: 550, message: "5.1.1 No such user here" } : undefined,
    });
    const mailbox = memoryQueue({ routes: ["local"] });
    const ours: Plugin = {
      name: "test:local-domain",
      hooks: {
        rcptTo: {
          order: "pre",
          handler: (_tx, recipient) =>
            recipient.address.endsWith("@local.test") ? accept({ route: "local" }) : undefined,
        },
      },
    };
    harness = await startOutbound(
      dns,
      { port: 25, smarthost: { host: `${net}.6`, port: smarthost!.port } },
      { plugins: [ours, mailbox.plugin] },
    );
    await harness.server.send({ from: "alice@local.test", to: ["nobody@example.test"], raw: buildMessage() });
    const bounced = await harness.events.wait("bounced");
    expect(bounced.dsnId).toBeDefined();
    await expect.poll(() => mailbox.messages.length).toBe(1);
    const report = mailbox.messages[0]!;
    expect(report).toMatchObject({
      from: "",
      recipients: ["alice@local.test"],
      route: "local",
      queueId: bounced.dsnId,
    });
    expect(report.bytes.toString()).toMatch(/^Final-Recipient: rfc822; nobody@example\.test\r$/m);
    // The smarthost saw the failed attempt only, never the report.
    expect(smarthost!.messages).toEqual([]);
  });

  it("bounces with 5.4.6 instead of delivering to itself when the next hop is its own listener", async () => {
    const [origin] = await sinksOnOnePort({ host: `${net}.3` });
    let ownPort = 0;
    const selfRoute: Plugin = {
      name: "test:route-to-self",
      handles: [outboundHooks.handlers({ route: () => ({ type: "relay", host: "127.0.0.1", port: ownPort }) })],
    };
    harness = await startOutbound(dns, { port: origin!.port }, { plugins: [selfRoute] });
    ownPort = harness.server.port;
    await harness.server.send({ from: "sender@origin.test", to: ["someone@loop.test"], raw: buildMessage() });
    // The report to sender@origin.test takes the same route and loops too: its bounce may come first.
    const bounced = await harness.events.wait("bounced", (event) => event.recipient.address === "someone@loop.test");
    expect(bounced.reply).toMatchObject({ status: "5.4.6", text: "mail for loop.test loops back to myself" });
  });

  it("bounces at once for a domain with a null MX (RFC 7505), without connecting anywhere", async () => {
    const [origin] = await sinksOnOnePort({ host: `${net}.3` });
    harness = await startOutbound(dns, { port: origin!.port });
    await harness.server.send({ from: "sender@origin.test", to: "user@nullmx.test", raw: buildMessage() });
    const bounced = await harness.events.wait("bounced");
    expect(bounced.reply).toMatchObject({ status: "5.1.10" });
    expect(bounced.reply.text).toMatch(/null MX/);
    expect(bounced.attempts).toBe(1);
    const report = await origin!.next();
    expect(report.bytes.toString()).toMatch(/^Status: 5\.1\.10\r$/m);
    expect(origin!.messages).toHaveLength(1);
  });

  it("falls back to the next MX when the preferred one does not answer", async () => {
    const [mx2] = await sinksOnOnePort({ host: `${net}.4` }); // nothing listens on .9
    harness = await startOutbound(dns, { port: mx2!.port });
    await harness.server.send({ from: "sender@origin.test", to: "bob@fallback.test", raw: buildMessage() });
    const delivered = await harness.events.wait("delivered");
    expect(delivered.attempts).toBe(1);
    expect(delivered.reply.remote).toMatch(/^mx2\.fallback\.test /);
    expect((await mx2!.next()).to).toEqual(["bob@fallback.test"]);
  });

  it("uses the domain itself when it has no MX records (implicit MX)", async () => {
    const [host] = await sinksOnOnePort({ host: `${net}.5` });
    harness = await startOutbound(dns, { port: host!.port });
    await harness.server.send({ from: "sender@origin.test", to: "carol@implicit.test", raw: buildMessage() });
    const delivered = await harness.events.wait("delivered");
    expect(delivered.reply.remote).toMatch(/^implicit\.test /);
  });

  it("reuses one connection for several messages to the same host", async () => {
    const [mx] = await sinksOnOnePort({ host: `${net}.2` });
    harness = await startOutbound(dns, { port: mx!.port, concurrency: { perDomain: 1 } });
    for (let i = 0; i < 3; i++) {
      await harness.server.send({ from: "sender@origin.test", to: `user${i}@example.test`, raw: buildMessage() });
    }
    await expect.poll(() => harness!.events.count("delivered"), { timeout: 15_000 }).toBe(3);
    expect(mx!.messages).toHaveLength(3);
    expect(mx!.connections).toBe(1);
  });

  it("bounces with 4.4.7 once a message is older than the maximum age, and never reports to the null sender", async () => {
    const [mx, origin] = await sinksOnOnePort(
      { host: `${net}.2`, rcpt: () => ({ code: 451, message: "4.3.0 Always later" }) },
      { host: `${net}.3` },
    );
    harness = await startOutbound(dns, {
      port: mx!.port,
      retry: { initialDelayMs: 100, maxDelayMs: 200, jitter: 0, maxAgeMs: 700 },
    });
    await harness.server.send({ from: "sender@origin.test", to: "stuck@example.test", raw: buildMessage() });
    const bounced = await harness.events.wait("bounced");
    expect(bounced.reply.status).toBe("4.4.7");
    expect(bounced.reply.text).toMatch(/delivery time expired .* last error: Always later/);
    expect(harness.events.count("deferred")).toBeGreaterThanOrEqual(2);
    const report = (await origin!.next()).bytes.toString();
    expect(report).toMatch(/^Status: 4\.4\.7\r$/m);
    expect(report).toMatch(/^Action: failed\r$/m);

    // A message from the null sender that bounces produces no report.
    await harness.server.send({ from: "", to: "stuck2@example.test", raw: buildMessage() });
    const second = await harness.events.wait("bounced", (event) => event.recipient.address === "stuck2@example.test");
    expect(second.dsnId).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(origin!.messages).toHaveLength(1);
  });
});
