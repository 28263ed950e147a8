// End to end, as the "done when" says: a message submitted with AUTH over STARTTLS is
// DKIM-signed (@postern/dkim), queued, delivered to the recipient domain's MX over verified TLS,
// retried on 4xx and bounced on 5xx with a delivery report to the sender.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accept, createResolver, type Plugin } from "@postern/core";
import dkim, { generateDkimKey } from "@postern/dkim";
import {
  buildMessage,
  createTestCertificate,
  type FakeDns,
  startFakeDns,
  type TestCertificate,
} from "@postern/testing";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.16";
let dns: FakeDns;
let cert: TestCertificate;
let keyDir: string;
let harness: OutboundHarness | undefined;
const sinks: MxSink[] = [];

const users: Plugin = {
  name: "test:users",
  hooks: {
    auth: (_session, credentials) =>
      credentials.username === "alice" && credentials.password === "pw" ? accept() : undefined,
  },
};

beforeAll(async () => {
  cert = await createTestCertificate(["mx.example.test", "mx.origin.test", "localhost"]);
  keyDir = await mkdtemp(join(tmpdir(), "postern-outbound-dkim-"));
  const key = generateDkimKey({ algorithm: "ed25519" });
  await writeFile(join(keyDir, "origin.test.s1.key"), key.privateKeyPem, { mode: 0o600 });
  dns = await startFakeDns({
    "example.test": { MX: ["10 mx.example.test"] },
    "mx.example.test": { A: [`${net}.2`] },
    "origin.test": { MX: ["10 mx.origin.test"] },
    "mx.origin.test": { A: [`${net}.3`] },
    "s1._domainkey.origin.test": { TXT: [key.record] },
  });
});
afterAll(async () => {
  await harness?.stop();
  for (const sink of sinks) await sink.close();
  await dns.close();
  await rm(keyDir, { recursive: true, force: true });
});

it("signs, queues and delivers a submission over TLS, retries 4xx and reports 5xx", { timeout: 60_000 }, async () => {
  const mx = await startSink({
    host: `${net}.2`,
    tls: cert,
    rcpt: (address, seen) => {
      if (address === "gone@example.test") return { code: 550, message: "5.1.1 No such mailbox" };
      if (address === "later@example.test" && seen === 1) return { code: 452, message: "4.2.2 Mailbox full" };
      return undefined;
    },
  });
  const origin = await startSink({ host: `${net}.3`, port: mx.port, tls: cert });
  sinks.push(mx, origin);
  harness = await startOutbound(
    dns,
    { port: mx.port, tls: { level: "verify", ca: await readFile(cert.certificate, "utf8") } },
    {
      plugins: [
        users,
        dkim({
          verify: false,
          sign: { keys: [{ domain: "origin.test", selector: "s1", keyFile: join(keyDir, "origin.test.s1.key") }] },
        }),
      ],
      config: {
        listeners: [
          {
            address: "127.0.0.1",
            port: 1,
            tls: "starttls",
            certificate: cert.certificate,
            key: cert.key,
            auth: "required",
          },
        ],
      },
    },
  );
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port: harness.server.port,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: "alice", pass: "pw" },
    name: "laptop.origin.test",
  });
  const raw = buildMessage({ from: "alice@origin.test", to: "bob@example.test", subject: "Signed and sent" });
  const recipients = ["bob@example.test", "later@example.test", "gone@example.test"];
  try {
    const info = await transport.sendMail({ envelope: { from: "alice@origin.test", to: recipients }, raw });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
  } finally {
    transport.close();
  }

  const first = await mx.next();
  expect(first).toMatchObject({ from: "alice@origin.test", to: ["bob@example.test"], secure: true });
  const resolver = createResolver({ servers: dns.servers, cacheTtlMs: 0 });
  const verified = await dkimVerify(first.bytes, {
    resolver: (name: string, type: string) => resolver.resolve(name, type),
  });
  expect(verified.results.map((result) => [result.signingDomain, result.status.result])).toEqual([
    ["origin.test", "pass"],
  ]);

  const retried = await mx.next();
  expect(retried.to).toEqual(["later@example.test"]);
  expect(retried.bytes.equals(first.bytes)).toBe(true); // the same signed bytes, attempt after attempt
  expect(
    (await harness.events.wait("delivered", (event) => event.recipient.address === "later@example.test")).attempts,
  ).toBe(2);

  const report = await origin.next();
  expect(report).toMatchObject({ from: "", to: ["alice@origin.test"], secure: true });
  expect(report.bytes.toString()).toMatch(
    /^Final-Recipient: rfc822; gone@example\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r$/m,
  );
  await expect.poll(async () => (await harness!.plugin.store.stats()).messages).toBe(0);
});
