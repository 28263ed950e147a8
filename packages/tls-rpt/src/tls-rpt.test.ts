// TLS-RPT end to end on loopback: a Postern server with outbound and tls-rpt delivers to real MX
// servers (Postern servers of the test's own on 127.0.29.x) under MTA-STS enforce policies
// fetched over HTTPS, counts the TLS outcomes in PostgreSQL, and sends each policy domain its
// report — to an HTTPS receiver that gunzips and checks it, and by mail, through outbound, to a
// third Postern server whose mailbox the test reads with an independent MIME parser.
import { readFile, rm } from "node:fs/promises";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { gunzipSync } from "node:zlib";
import { createServer, type PosternServer } from "@postern/core";
import outbound, { type DeferredEvent, type DeliveryEvent } from "@postern/outbound";
import {
  buildMessage,
  claimRecipients,
  createTestCertificate,
  type FakeDns,
  freePort,
  type MemoryQueue,
  makeTempDir,
  memoryQueue,
  startFakeDns,
  startTestServer,
  type TestCertificate,
  type TestServer,
} from "@postern/testing";
import { simpleParser } from "mailparser";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import tlsRpt, { type TlsReport, type TlsRptPlugin } from "./index.ts";

const net = "127.0.29";
const connectionString = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `tls_rpt_e2e_${process.pid}`;

let cert: TestCertificate;
let ca: string;
let dns: FakeDns;
let spool: string;
const receivers: PosternServer[] = [];
const https: HttpsServer[] = [];
let mailbox: MemoryQueue;
let goodMx: MemoryQueue;
const posted: { url: string; type: string | undefined; body: Buffer }[] = [];
let sender: TestServer;
let rpt: TlsRptPlugin;
const delivered: DeliveryEvent[] = [];
const deferred: DeferredEvent[] = [];

async function listenHttps(address: string, port: number, handler: Parameters<typeof createHttpsServer>[1]) {
  const server = createHttpsServer({ cert: await readFile(cert.certificate), key: await readFile(cert.key) }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => resolve());
  });
  https.push(server);
  return (server.address() as AddressInfo).port;
}

/** An MTA-STS policy host: RFC 8461 fixes port 443. */
function policyHost(address: string, policy: string) {
  return listenHttps(address, 443, (request, response) => {
    if (request.url !== "/.well-known/mta-sts.txt") response.writeHead(404).end();
    else response.writeHead(200, { "content-type": "text/plain" }).end(policy);
  });
}

/** A receiving MX: a Postern server taking every recipient into a memory queue. */
async function mx(address: string, port: number, tls: boolean): Promise<MemoryQueue> {
  const queue = memoryQueue();
  // Its own server, not startTestServer: every MX must listen on the one port outbound connects to.
  const server = createServer({
    hostname: `mx-${address}`,
    log: { level: "warn" },
    listeners: [
      tls
        ? { address, port, tls: "starttls", certificate: cert.certificate, key: cert.key }
        : { address, port, tls: "none" },
    ],
    plugins: [claimRecipients(), queue.plugin],
  });
  await server.start();
  receivers.push(server);
  return queue;
}

/** The next event of a list that matches, waiting for it. */
async function waitFor<T>(list: T[], match: (event: T) => boolean): Promise<T> {
  try {
    await expect.poll(() => list.some(match), { timeout: 15_000 }).toBe(true);
  } catch (error) {
    const said = sender.logs.filter((line) => line.level >= 30).map((line) => `${line.msg} ${JSON.stringify(line)}`);
    throw new Error(`no such event; the sender logged:\n${said.join("\n")}`, { cause: error });
  }
  return list.find(match)!;
}

beforeAll(async () => {
  cert = await createTestCertificate([
    "mx.good.test",
    "mx.plain.test",
    "mta-sts.good.test",
    "mta-sts.plain.test",
    "reports.good.test",
    "mx.reports.test",
  ]);
  ca = await readFile(cert.certificate, "utf8");
  // mailauth fetches MTA-STS policies with Node's default trust store; add ours for this process.
  setDefaultCACertificates([...getCACertificates("default"), ca]);
  await policyHost(`${net}.20`, "version: STSv1\nmode: enforce\nmx: mx.good.test\nmax_age: 86400\n");
  await policyHost(`${net}.21`, "version: STSv1\nmode: enforce\nmx: mx.plain.test\nmax_age: 86400\n");
  const reportPort = await listenHttps(`${net}.30`, 0, (request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      posted.push({ url: request.url ?? "", type: request.headers["content-type"], body: Buffer.concat(chunks) });
      response.writeHead(201).end();
    });
  });
  // Every MX listens on one port (outbound's `port`), each on its own address.
  const port = await freePort();
  mailbox = await mx(`${net}.3`, port, false);
  goodMx = await mx(`${net}.2`, port, true);
  await mx(`${net}.4`, port, false);
  dns = await startFakeDns({
    // backup.good.test is not in good.test's policy: skipped, never connected to, reported.
    "good.test": { MX: ["10 mx.good.test", "20 backup.good.test"] },
    "backup.good.test": { A: [`${net}.5`] },
    "mx.good.test": { A: [`${net}.2`] },
    "_mta-sts.good.test": { TXT: ["v=STSv1; id=1"] },
    "mta-sts.good.test": { A: [`${net}.20`] },
    "_smtp._tls.good.test": { TXT: [`v=TLSRPTv1; rua=https://reports.good.test:${reportPort}/v1/tlsrpt`] },
    "reports.good.test": { A: [`${net}.30`] },
    // The only MX of plain.test offers no STARTTLS, and its MTA-STS policy is enforce.
    "plain.test": { MX: ["10 mx.plain.test"] },
    "mx.plain.test": { A: [`${net}.4`] },
    "_mta-sts.plain.test": { TXT: ["v=STSv1; id=2"] },
    "mta-sts.plain.test": { A: [`${net}.21`] },
    // The second destination takes reports of at most 100 bytes: this one is larger.
    "_smtp._tls.plain.test": { TXT: ["v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,mailto:tiny@reports.test!100"] },
    "reports.test": { MX: ["10 mx.reports.test"] },
    "mx.reports.test": { A: [`${net}.3`] },
  });
  spool = await makeTempDir("tls-rpt-e2e");
  rpt = tlsRpt({
    store: { type: "postgres", connectionString, schema },
    schedule: false,
    organizationName: "Postern Test",
    contactInfo: "tls-reports@sender.test",
    https: { ca },
  });
  sender = await startTestServer({
    plugins: [
      claimRecipients({ route: "relay" }),
      outbound({
        queue: { type: "fs", dir: spool },
        port,
        tls: { ca },
        // One attempt per message in this test: the next would be an hour later.
        retry: { initialDelayMs: 3_600_000 },
        worker: { pollIntervalMs: 100 },
        hooks: {
          delivered: (event) => {
            delivered.push(event);
          },
          deferred: (event) => {
            deferred.push(event);
          },
        },
      }),
      rpt,
    ],
    dns,
    hostname: "mta.sender.test",
  });
});

afterAll(async () => {
  await sender?.stop();
  for (const server of receivers) await server.stop();
  for (const server of https) await new Promise((resolve) => server.close(resolve));
  await dns?.close();
  if (spool) await rm(spool, { recursive: true, force: true });
  const client = new pg.Client({ connectionString });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

describe("TLS reports (RFC 8460)", () => {
  it("records each delivery's TLS outcome on the delivery event", async () => {
    await sender.send({ from: "someone@sender.test", to: "a@good.test", raw: buildMessage({ subject: "over TLS" }) });
    const ok = await waitFor(delivered, (event) => event.recipient.address === "a@good.test");
    expect(ok.tls).toEqual([
      expect.objectContaining({
        result: "success",
        policy: {
          type: "sts",
          domain: "good.test",
          strings: ["version: STSv1", "mode: enforce", "mx: mx.good.test", "max_age: 86400"],
          mxHost: "mx.good.test",
        },
        mxHost: "mx.good.test",
        receivingIp: `${net}.2`,
      }),
    ]);
    expect(goodMx.messages.map((message) => message.recipients)).toEqual([["a@good.test"]]);

    await sender.send({ from: "someone@sender.test", to: "b@plain.test", raw: buildMessage({ subject: "no TLS" }) });
    const refused = await waitFor(deferred, (event) => event.recipient.address === "b@plain.test");
    expect(refused.reply.status).toMatch(/^4\.7\./);
    expect(refused.tls).toEqual([
      expect.objectContaining({
        result: "starttls-not-supported",
        policy: expect.objectContaining({ type: "sts", domain: "plain.test" }),
        mxHost: "mx.plain.test",
        receivingIp: `${net}.4`,
        sendingIp: expect.any(String),
      }),
    ]);
  });

  it("shows in a dry run what would be sent, claiming nothing", async () => {
    const shown = await rpt.dryRun({ now: Date.now() + 86_400_000 });
    const byDomain = Object.fromEntries(shown.map((report) => [report.policyDomain, report]));
    expect(Object.keys(byDomain).sort()).toEqual(["good.test", "plain.test"]);
    expect(byDomain["good.test"]).toMatchObject({
      status: "dry-run",
      successfulSessions: 1,
      failedSessions: 1,
      fileName: expect.stringMatching(/^mta\.sender\.test!good\.test!\d+!\d+!.+\.json\.gz$/),
      jsonBytes: expect.any(Number),
      gzipBytes: expect.any(Number),
      mailBytes: expect.any(Number),
    });
    expect(byDomain["plain.test"]!.destinations).toEqual([
      { kind: "mailto", address: "tlsrpt@reports.test", ok: false, outcome: "would-send", detail: "" },
      {
        kind: "mailto",
        address: "tiny@reports.test",
        maxBytes: 100,
        ok: false,
        outcome: "too-large",
        detail: `the report is ${byDomain["plain.test"]!.mailBytes} bytes as mailed; the destination takes at most 100`,
      },
    ]);
    expect(byDomain["plain.test"]!.mailBytes).toBeGreaterThan(100);
    expect(posted).toHaveLength(0);
  });

  it("sends each policy domain its report: by HTTPS POST and by mail through outbound", async () => {
    // Tomorrow's run reports today.
    const sent = await rpt.sendReports({ now: Date.now() + 86_400_000 });
    const status = Object.fromEntries(sent.map((report) => [report.policyDomain, report.status]));
    expect(status).toEqual({ "good.test": "sent", "plain.test": "sent" });
    // Over the second destination's size limit: not sent there, and said at warn.
    const plainSent = sent.find((report) => report.policyDomain === "plain.test")!;
    expect(plainSent.destinations.map((entry) => [entry.kind === "mailto" && entry.address, entry.outcome])).toEqual([
      ["tlsrpt@reports.test", "sent"],
      ["tiny@reports.test", "too-large"],
    ]);
    expect(
      sender.logs.some(
        (line) => line.level === 40 && line.msg === "TLS report too large for a destination; not sent there",
      ),
    ).toBe(true);

    expect(posted).toHaveLength(1);
    expect(posted[0]!.url).toBe("/v1/tlsrpt");
    expect(posted[0]!.type).toBe("application/tlsrpt+gzip");
    const good = JSON.parse(gunzipSync(posted[0]!.body).toString()) as TlsReport;
    expect(good).toMatchObject({
      "organization-name": "Postern Test",
      "contact-info": "tls-reports@sender.test",
      "report-id": expect.any(String),
      "date-range": {
        "start-datetime": expect.stringMatching(/T00:00:00Z$/),
        "end-datetime": expect.stringMatching(/T23:59:59Z$/),
      },
    });
    const goodPolicy = ["version: STSv1", "mode: enforce", "mx: mx.good.test", "max_age: 86400"];
    expect(good.policies).toHaveLength(2);
    expect(good.policies).toEqual(
      expect.arrayContaining([
        {
          policy: {
            "policy-type": "sts",
            "policy-string": goodPolicy,
            "policy-domain": "good.test",
            "mx-host": "mx.good.test",
          },
          summary: { "total-successful-session-count": 1, "total-failure-session-count": 0 },
        },
        // The MX host the policy rules out: a failure session without IPs (no connection was made),
        // under the policy with no mx-host, as it matches none of the policy's patterns.
        {
          policy: { "policy-type": "sts", "policy-string": goodPolicy, "policy-domain": "good.test" },
          summary: { "total-successful-session-count": 0, "total-failure-session-count": 1 },
          "failure-details": [
            {
              "result-type": "validation-failure",
              "receiving-mx-hostname": "backup.good.test",
              "failed-session-count": 1,
              "failure-reason-code": "mx-not-in-policy",
            },
          ],
        },
      ]),
    );

    await expect.poll(() => mailbox.messages.length, { timeout: 15_000 }).toBe(1);
    const mail = mailbox.messages[0]!;
    expect(mail.recipients).toEqual(["tlsrpt@reports.test"]);
    expect(mail.from).toBe("noreply-tlsrpt@mta.sender.test");
    const parsed = await simpleParser(mail.bytes);
    expect(parsed.headers.get("tls-report-domain")).toBe("plain.test");
    expect(parsed.headers.get("tls-report-submitter")).toBe("mta.sender.test");
    expect(parsed.headers.get("content-type")).toMatchObject({
      value: "multipart/report",
      params: { "report-type": "tlsrpt" },
    });
    expect(parsed.subject).toMatch(/^Report Domain: plain\.test Submitter: mta\.sender\.test Report-ID: <.+>$/);
    const attachment = parsed.attachments.find((part) => part.contentType === "application/tlsrpt+gzip");
    expect(attachment?.filename).toMatch(/^mta\.sender\.test!plain\.test!\d+!\d+!.+\.json\.gz$/);
    const plain = JSON.parse(gunzipSync(attachment!.content).toString()) as TlsReport;
    expect(plain.policies).toEqual([
      {
        policy: {
          "policy-type": "sts",
          "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.plain.test", "max_age: 86400"],
          "policy-domain": "plain.test",
          "mx-host": "mx.plain.test",
        },
        summary: { "total-successful-session-count": 0, "total-failure-session-count": 1 },
        "failure-details": [
          {
            "result-type": "starttls-not-supported",
            "sending-mta-ip": expect.any(String),
            "receiving-mx-hostname": "mx.plain.test",
            "receiving-ip": `${net}.4`,
            "failed-session-count": 1,
            "failure-reason-code": expect.any(String),
          },
        ],
      },
    ]);

    // A report goes out once: the next run finds nothing left for that day.
    const again = await rpt.sendReports({ now: Date.now() + 86_400_000 });
    expect(again.filter((report) => report.policyDomain !== "reports.test")).toEqual([]);
  });
});
