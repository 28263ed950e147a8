// DSN end to end (RFC 3461) over real SMTP: NOTIFY, ORCPT, RET and ENVID given by a client at
// RCPT/MAIL FROM are kept in the queue and handed to a next hop that offers DSN, one RCPT TO each
// with its own parameters; a next hop without DSN makes a NOTIFY=SUCCESS request answer
// "relayed"; a recipient still queued after dsn.delayWarningMs gets one "delayed" report; a
// recipient stored in a local mailbox gets "delivered".
import { accept, type Plugin } from "@postern/core";
import { buildMessage, type FakeDns, memoryQueue, type RawSmtpClient, startFakeDns } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.14";
let dns: FakeDns;
let harness: OutboundHarness | undefined;
const sinks: MxSink[] = [];

async function sinksOnOnePort(...specs: Parameters<typeof startSink>[0][]): Promise<MxSink[]> {
  const started: MxSink[] = [];
  for (const spec of specs) {
    const sink = await startSink({ ...spec, port: started[0]?.port ?? 0 });
    started.push(sink);
    sinks.push(sink);
  }
  return started;
}

/** One transaction over a raw connection, the ESMTP parameters written as given. */
async function rawSend(
  client: RawSmtpClient,
  mailFrom: string,
  recipients: string[],
  raw: Buffer | string,
): Promise<string> {
  expect((await client.read()).code).toBe(220);
  expect((await client.command("EHLO client.test")).code).toBe(250);
  const mail = await client.command(`MAIL FROM:${mailFrom}`);
  expect(mail.code, mail.text).toBe(250);
  for (const rcpt of recipients) {
    const reply = await client.command(`RCPT TO:${rcpt}`);
    expect(reply.code, reply.text).toBe(250);
  }
  expect((await client.command("DATA")).code).toBe(354);
  client.write(Buffer.concat([Buffer.from(raw), Buffer.from(".\r\n")]));
  const done = await client.read();
  expect(done.code, done.text).toBe(250);
  client.close();
  return done.text;
}

beforeAll(async () => {
  dns = await startFakeDns({
    "example.test": { MX: ["10 mx1.example.test"] },
    "mx1.example.test": { A: [`${net}.2`] },
    "origin.test": { MX: ["10 mx.origin.test"] },
    "mx.origin.test": { A: [`${net}.3`] },
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

describe("DSN parameters relayed", () => {
  it("hands each recipient's NOTIFY and ORCPT, and RET and ENVID, to a next hop offering DSN, in one transaction", async () => {
    const [mx, origin] = await sinksOnOnePort({ host: `${net}.2` }, { host: `${net}.3` });
    harness = await startOutbound(dns, { port: mx!.port });
    await rawSend(
      await harness.server.connect(),
      "<sender@origin.test> RET=HDRS ENVID=QQ+2B314",
      [
        "<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;list+2Bx@origin.test",
        "<bob@example.test> NOTIFY=NEVER",
        "<carol@example.test>",
      ],
      buildMessage({ subject: "dsn params" }),
    );
    const received = await mx!.next();
    expect(received.to).toEqual(["alice@example.test", "bob@example.test", "carol@example.test"]);
    expect(received.dsn).toMatchObject({
      ret: "HDRS",
      envid: "QQ+314",
      rcpt: [{ notify: ["SUCCESS", "FAILURE"], orcpt: "rfc822;list+x@origin.test" }, { notify: ["NEVER"] }, undefined],
    });
    await harness.events.wait("delivered", (event) => event.recipient.address === "carol@example.test");
    // The next hop took the SUCCESS request over: no "relayed" report from us.
    expect(harness.events.count("delivered")).toBe(3);
    expect(origin!.messages).toHaveLength(0);
  });

  it('answers NOTIFY=SUCCESS with a "relayed" report when the next hop does not offer DSN', async () => {
    const [mx, origin] = await sinksOnOnePort({ host: `${net}.2`, dsn: false }, { host: `${net}.3` });
    harness = await startOutbound(dns, { port: mx!.port });
    await rawSend(
      await harness.server.connect(),
      "<sender@origin.test> ENVID=env-1",
      ["<alice@example.test> NOTIFY=SUCCESS ORCPT=rfc822;team@origin.test", "<bob@example.test>"],
      buildMessage({ subject: "relayed please" }),
    );
    const received = await mx!.next();
    expect(received.dsn).toMatchObject({ rcpt: [undefined, undefined] });
    const report = await origin!.next();
    expect(report.from).toBe("");
    const text = report.bytes.toString();
    expect(text).toMatch(/^Subject: Successful Mail Relay Report\r$/m);
    expect(text).toMatch(/^Original-Envelope-Id: env-1\r$/m);
    expect(text).toMatch(/^Final-Recipient: rfc822; alice@example\.test\r$/m);
    expect(text).toMatch(/^Original-Recipient: rfc822;team@origin\.test\r$/m);
    expect(text).toMatch(/^Action: relayed\r$/m);
    expect(text).toMatch(/^Status: 2\.0\.0\r$/m);
    // Only the header comes back with a success report, and bob asked for nothing.
    expect(text).toMatch(/^Content-Type: text\/rfc822-headers\r$/m);
    expect(text).not.toMatch(/bob@example\.test/);
  });
});

describe("delay reports", () => {
  it("warns the sender once when a recipient is still queued after dsn.delayWarningMs, then delivers", async () => {
    let refusals = 0;
    const [mx, origin] = await sinksOnOnePort(
      {
        host: `${net}.2`,
        rcpt: (address) =>
          address === "slow@example.test" && refusals++ < 4 ? { code: 451, message: "4.2.1 Try later" } : undefined,
      },
      { host: `${net}.3` },
    );
    harness = await startOutbound(dns, {
      port: mx!.port,
      dsn: { delayWarningMs: 1 },
      retry: { initialDelayMs: 50, maxDelayMs: 100, factor: 1, jitter: 0 },
    });
    await harness.server.send({
      from: "sender@origin.test",
      to: "slow@example.test",
      raw: buildMessage({ subject: "slow one" }),
    });
    const report = await origin!.next();
    const text = report.bytes.toString();
    expect(text).toMatch(/^Subject: Delayed Mail \(still being retried\)\r$/m);
    expect(text).toMatch(/^Action: delayed\r$/m);
    expect(text).toMatch(/^Status: 4\.2\.1\r$/m);
    expect(text).toMatch(/^Will-Retry-Until: /m);
    expect(text).toMatch(/^Content-Type: text\/rfc822-headers\r$/m);
    const delivered = await harness.events.wait(
      "delivered",
      (event) => event.recipient.address === "slow@example.test",
    );
    expect(delivered.attempts).toBe(5);
    // Four deferrals, one warning: the queue remembers that it was sent.
    expect(harness.events.count("deferred")).toBe(4);
    expect(origin!.messages).toHaveLength(1);
  });

  it("sends no delay report for NOTIFY=FAILURE only", async () => {
    let refusals = 0;
    const [mx, origin] = await sinksOnOnePort(
      {
        host: `${net}.2`,
        rcpt: () => (refusals++ < 2 ? { code: 451, message: "4.2.1 Try later" } : undefined),
      },
      { host: `${net}.3` },
    );
    harness = await startOutbound(dns, {
      port: mx!.port,
      dsn: { delayWarningMs: 1 },
      retry: { initialDelayMs: 50, maxDelayMs: 100, factor: 1, jitter: 0 },
    });
    await rawSend(
      await harness.server.connect(),
      "<sender@origin.test>",
      ["<alice@example.test> NOTIFY=FAILURE"],
      buildMessage(),
    );
    await harness.events.wait("delivered", (event) => event.recipient.address === "alice@example.test");
    expect(harness.events.count("deferred")).toBe(2);
    expect(origin!.messages).toHaveLength(0);
  });
});

describe("delivered reports", () => {
  it('answers NOTIFY=SUCCESS for a recipient stored in a local mailbox with "delivered"', async () => {
    const [origin] = await sinksOnOnePort({ host: `${net}.3` });
    const mailbox = memoryQueue({ routes: ["local"] });
    const localDomain: Plugin = {
      name: "test:local-domain",
      hooks: {
        rcptTo: {
          order: "pre",
          handler: (_tx, recipient) =>
            recipient.address.endsWith("@here.test") ? accept({ route: "local" }) : undefined,
        },
      },
    };
    harness = await startOutbound(dns, { port: origin!.port }, { plugins: [localDomain, mailbox.plugin] });
    await rawSend(
      await harness.server.connect(),
      "<sender@origin.test> ENVID=local-1",
      ["<alice@here.test> NOTIFY=SUCCESS,FAILURE", "<bob@here.test>"],
      buildMessage({ subject: "stored here" }),
    );
    await expect.poll(() => mailbox.messages.length).toBe(1);
    expect(mailbox.messages[0]!.recipients).toEqual(["alice@here.test", "bob@here.test"]);
    const report = await origin!.next();
    const text = report.bytes.toString();
    expect(report.to).toEqual(["sender@origin.test"]);
    expect(text).toMatch(/^Subject: Successful Mail Delivery Report\r$/m);
    expect(text).toMatch(/^Original-Envelope-Id: local-1\r$/m);
    expect(text).toMatch(/^Final-Recipient: rfc822; alice@here\.test\r$/m);
    expect(text).toMatch(/^Action: delivered\r$/m);
    expect(text).toMatch(/^Status: 2\.0\.0\r$/m);
    expect(text).not.toMatch(/bob@here\.test/);
  });
});
