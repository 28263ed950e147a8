// SMTPUTF8 end to end (RFC 6531, 6532, 6533) over real SMTP: UTF-8 local parts accepted from raw
// SMTP and from nodemailer, kept byte for byte in the queue, relayed with SMTPUTF8 to a next hop
// that offers it, and bounced (5.6.7 for addresses, 5.6.9 for header fields) when no next hop of
// the domain does, with an RFC 6533 report (utf-8 address type, message/global-delivery-status).
import { buildMessage, type FakeDns, type RawSmtpClient, startFakeDns } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.15";
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

/** Writes a command as UTF-8 bytes (the kit's command() writes strings as Latin-1). */
function utf8Command(client: RawSmtpClient, line: string) {
  client.write(Buffer.from(`${line}\r\n`, "utf8"));
  return client.read();
}

/** One transaction written as raw bytes (UTF-8 commands), replies checked on the way. */
async function rawSend(client: RawSmtpClient, mailFrom: string, rcpt: string[], raw: Buffer): Promise<void> {
  expect((await client.read()).code).toBe(220);
  const ehlo = await client.command("EHLO client.test");
  expect(ehlo.lines).toContain("SMTPUTF8");
  const mail = await utf8Command(client, `MAIL FROM:${mailFrom}`);
  expect(mail.code, mail.text).toBe(250);
  for (const address of rcpt) {
    const reply = await utf8Command(client, `RCPT TO:${address}`);
    expect(reply.code, reply.text).toBe(250);
  }
  expect((await client.command("DATA")).code).toBe(354);
  client.write(Buffer.concat([raw, Buffer.from(".\r\n")]));
  const done = await client.read();
  expect(done.code, done.text).toBe(250);
  client.close();
}

/** A message whose header and body carry UTF-8 (RFC 6532), as bytes. */
function utf8Message(to: string): Buffer {
  return Buffer.from(
    [
      "From: Jørgen <jørgen@origin.test>",
      `To: <${to}>`,
      "Subject: Grüße aus Århus ✉",
      "Message-ID: <utf8.1@origin.test>",
      "Date: Thu, 03 Dec 2026 08:00:00 +0000",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=utf-8",
      "Content-Transfer-Encoding: 8bit",
      "",
      "Hei på deg — 你好",
      "",
    ].join("\r\n"),
    "utf8",
  );
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

describe("SMTPUTF8 relayed", () => {
  it("takes a UTF-8 local part over raw SMTP, queues it byte-exact and relays it with SMTPUTF8", async () => {
    const [mx] = await sinksOnOnePort({ host: `${net}.2` });
    harness = await startOutbound(dns, { port: mx!.port });
    const raw = utf8Message("jøran.ødegård@example.test");
    await rawSend(
      await harness.server.connect(),
      "<jørgen@origin.test> SMTPUTF8 BODY=8BITMIME",
      ["<jøran.ødegård@example.test>"],
      raw,
    );
    const received = await mx!.next();
    expect(received.smtpUtf8).toBe(true);
    expect(received.from).toBe("jørgen@origin.test");
    expect(received.to).toEqual(["jøran.ødegård@example.test"]);
    expect(Buffer.from(received.to[0]!, "utf8").equals(Buffer.from("jøran.ødegård@example.test", "utf8"))).toBe(true);
    // The message bytes arrive unchanged after our Received field.
    expect(received.bytes.subarray(received.bytes.length - raw.length).equals(raw)).toBe(true);
    const delivered = await harness.events.wait("delivered");
    expect(delivered.recipient.address).toBe("jøran.ødegård@example.test");
    expect(delivered.message.smtpUtf8).toBe(true);
  });

  it("takes a UTF-8 recipient from nodemailer (which asks for SMTPUTF8 itself) and relays it", async () => {
    const [mx] = await sinksOnOnePort({ host: `${net}.2` });
    harness = await startOutbound(dns, { port: mx!.port });
    await harness.server.send({
      from: "sender@origin.test",
      to: "用户@example.test",
      raw: utf8Message("用户@example.test"),
    });
    const received = await mx!.next();
    expect(received.to).toEqual(["用户@example.test"]);
    expect(received.smtpUtf8).toBe(true);
  });
});

describe("SMTPUTF8 refused by the next hop", () => {
  it("bounces a UTF-8 address with 5.6.7 and an RFC 6533 report when the MX lacks SMTPUTF8", async () => {
    const [mx, origin] = await sinksOnOnePort({ host: `${net}.2`, smtpUtf8: false }, { host: `${net}.3` });
    harness = await startOutbound(dns, { port: mx!.port });
    await rawSend(
      await harness.server.connect(),
      "<sender@origin.test> SMTPUTF8",
      ["<søren@example.test>", "<plain@example.test>"],
      utf8Message("søren@example.test"),
    );
    const bounced = await harness.events.wait("bounced");
    expect(bounced.recipient.address).toBe("søren@example.test");
    expect(bounced.reply.status).toBe("5.6.7");
    expect(bounced.reply.code).toBe(550);
    const report = await origin!.next();
    const text = report.bytes.toString("utf8");
    expect(text).toMatch(/^Content-Type: message\/global-delivery-status\r$/m);
    expect(text).toMatch(/^Final-Recipient: utf-8; søren@example\.test\r$/m);
    expect(text).toMatch(/^Status: 5\.6\.7\r$/m);
    expect(text).toMatch(/^Content-Type: message\/global\r$/m);
    // Nothing reached the MX that cannot take it, the message stayed whole for the report.
    expect(mx!.messages).toHaveLength(0);
  });

  it("bounces with 5.6.9 a message received with SMTPUTF8 whose UTF-8 is only in its header", async () => {
    const [mx, origin] = await sinksOnOnePort({ host: `${net}.2`, smtpUtf8: false }, { host: `${net}.3` });
    harness = await startOutbound(dns, { port: mx!.port });
    await rawSend(
      await harness.server.connect(),
      "<sender@origin.test> SMTPUTF8",
      ["<plain@example.test>"],
      utf8Message("plain@example.test"),
    );
    const bounced = await harness.events.wait("bounced");
    expect(bounced.reply.status).toBe("5.6.9");
    await origin!.next();
  });

  it("sends an ASCII message received with SMTPUTF8 but without UTF-8 in its header", async () => {
    const [mx] = await sinksOnOnePort({ host: `${net}.2`, smtpUtf8: false });
    harness = await startOutbound(dns, { port: mx!.port });
    await rawSend(
      await harness.server.connect(),
      "<sender@origin.test> SMTPUTF8",
      ["<plain@example.test>"],
      Buffer.from(buildMessage({ subject: "ascii only" })),
    );
    const received = await mx!.next();
    expect(received.smtpUtf8).toBe(false);
    await harness.events.wait("delivered");
  });
});
