// DMARC aggregate reports end to end on loopback: a Postern server with spf + dkim + dmarc +
// dmarc-reports + outbound receives mail (DNS from the test kit's fake zone), counts each DMARC
// evaluation (once in the file store, once in the real PostgreSQL at DATABASE_URL), and sends
// the policy domain its report through outbound to a second Postern server acting as the
// domain's MX. The report mail is read back by mailparser and our parser, and by Mail::DMARC
// (Debian's libmail-dmarc-perl) from the raw message.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { createServer, type PosternServer } from "@postern/core";
import dkim from "@postern/dkim";
import dmarc from "@postern/dmarc";
import outbound from "@postern/outbound";
import spf from "@postern/spf";
import {
  buildMessage,
  claimRecipients,
  type FakeDns,
  freePort,
  type MemoryQueue,
  makeTempDir,
  memoryQueue,
  startFakeDns,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { simpleParser } from "mailparser";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import dmarcReports, { type DmarcReportsPlugin, parseAggregateReport, type ReportOutcome } from "./index.ts";
import { readWithMailDmarc } from "./testing/mail-dmarc.ts";

const connectionString = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const tomorrow = () => Date.now() + 86_400_000;

/** The whole path with one store: the file store of one node, or PostgreSQL shared by nodes. */
function endToEnd(storeKind: "file" | "postgres", net: string) {
  const schema = `dmarc_reports_e2e_${process.pid}`;
  describe(`DMARC aggregate reports (DMARCbis aggregate reporting), ${storeKind} store`, () => {
    let dns: FakeDns;
    let dir: string;
    let brandMx: PosternServer;
    let inbox: MemoryQueue;
    let receiver: TestServer;
    let local: MemoryQueue;
    let reports: DmarcReportsPlugin;
    let sent: ReportOutcome[] = [];

    beforeAll(async () => {
      dir = await makeTempDir("dmarc-reports-e2e");
      // The second Postern: MX of brand.test and reports.test, taking every recipient.
      const port = await freePort();
      inbox = memoryQueue();
      brandMx = createServer({
        hostname: "mx.brand.test",
        log: { level: "warn" },
        listeners: [{ address: `${net}.2`, port, tls: "none" }],
        plugins: [claimRecipients(), inbox.plugin],
      });
      await brandMx.start();
      dns = await startFakeDns({
        // The test kit's client connects from 127.0.0.1.
        "brand.test": { TXT: ["v=spf1 ip4:127.0.0.1 -all"], MX: ["10 mx.brand.test"] },
        "_dmarc.brand.test": {
          TXT: [
            "v=DMARC1; p=reject; sp=quarantine; adkim=s; rua=mailto:dmarc@brand.test!10m,mailto:agg@reports.test,mailto:spy@noauth.test,mailto:tiny@brand.test!100",
          ],
        },
        "mx.brand.test": { A: [`${net}.2`] },
        // reports.test agrees to take brand.test's reports; noauth.test publishes nothing.
        "brand.test._report._dmarc.reports.test": { TXT: ["v=DMARC1"] },
        "reports.test": { MX: ["10 mx.brand.test"] },
        "noauth.test": { MX: ["10 mx.brand.test"] },
        "evil.test": { TXT: ["v=spf1 ip4:127.0.0.1 -all"] },
        // A domain with a policy and no rua: evaluated, counted, never reported.
        "quiet.test": { TXT: ["v=spf1 ip4:127.0.0.1 -all"] },
        "_dmarc.quiet.test": { TXT: ["v=DMARC1; p=none"] },
      });
      reports = dmarcReports({
        store:
          storeKind === "file"
            ? { type: "file", dir: join(dir, "counters") }
            : { type: "postgres", connectionString, schema },
        schedule: false,
        organizationName: "Receiver Test",
        email: "dmarc-contact@receiver.test",
      });
      local = memoryQueue({ routes: ["local"] });
      receiver = await startTestServer({
        hostname: "mx.receiver.test",
        dns,
        plugins: [
          claimRecipients({ match: (address) => address.endsWith("@receiver.test") }),
          // Everything else is relayed: the reports the server writes itself.
          claimRecipients({ route: "relay" }),
          spf(),
          dkim(),
          dmarc(),
          reports,
          local.plugin,
          outbound({
            queue: { type: "fs", dir: join(dir, "queue") },
            port,
            retry: { initialDelayMs: 3_600_000 },
            worker: { pollIntervalMs: 100 },
          }),
        ],
      });
    });

    afterAll(async () => {
      await receiver?.stop();
      await brandMx?.stop();
      await dns?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
      if (storeKind === "postgres") {
        const client = new pg.Client({ connectionString });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await client.end();
      }
    });

    it("counts every evaluation, also of mail the policy refuses", async () => {
      for (let i = 0; i < 3; i++) {
        await receiver.send({
          from: "boss@brand.test",
          to: "user@receiver.test",
          raw: buildMessage({ from: "boss@brand.test", subject: `aligned ${i}` }),
        });
      }
      await expect(
        receiver.send({ from: "x@evil.test", to: "user@receiver.test", raw: buildMessage({ from: "ceo@brand.test" }) }),
      ).rejects.toMatchObject({ responseCode: 550 });
      // A subdomain without its own record: brand.test's sp=quarantine applies.
      await receiver.send({
        from: "x@evil.test",
        to: "user@receiver.test",
        raw: buildMessage({ from: "news@sub.brand.test" }),
      });
      await receiver.send({
        from: "a@quiet.test",
        to: "user@receiver.test",
        raw: buildMessage({ from: "a@quiet.test" }),
      });
      expect(local.messages).toHaveLength(5);
      expect(local.messages[3]!.bytes.toString()).toMatch(/^X-Postern-Quarantine: DMARC policy of brand\.test/m);

      const preview = await reports.dryRun({ now: tomorrow() });
      const brand = preview.find((outcome) => outcome.policyDomain === "brand.test")!;
      expect(brand).toMatchObject({ status: "dry-run", records: 3, messages: 5 });
      expect(brand.destinations.map((entry) => [entry.uri, entry.outcome])).toEqual([
        ["mailto:dmarc@brand.test", "would-send"],
        ["mailto:agg@reports.test", "would-send"],
        ["mailto:tiny@brand.test", "too-large"],
        ["mailto:spy@noauth.test", "not-authorised"],
      ]);
      expect(brand.gzipBytes).toBeGreaterThan(0);
      expect(brand.encodedBytes).toBeGreaterThan(100);
      expect(preview.find((outcome) => outcome.policyDomain === "quiet.test")).toMatchObject({
        status: "no-destination",
        records: 1,
      });
      // A dry run claims nothing and sends nothing.
      expect(inbox.messages).toHaveLength(0);
    });

    it("sends the report once, through outbound, to the destinations that may and can take it", async () => {
      sent = await reports.sendReports({ now: tomorrow() });
      expect(Object.fromEntries(sent.map((outcome) => [outcome.policyDomain, outcome.status]))).toEqual({
        "brand.test": "sent",
        "quiet.test": "no-destination",
      });
      const brand = sent.find((outcome) => outcome.policyDomain === "brand.test")!;
      expect(brand.destinations.map((entry) => [entry.address, entry.outcome, entry.external])).toEqual([
        ["dmarc@brand.test", "sent", false],
        ["agg@reports.test", "sent", true],
        ["tiny@brand.test", "too-large", false],
        [undefined, "not-authorised", false],
      ]);
      expect(
        receiver.logs.some(
          (line) =>
            line.msg.includes("too large") && line.destination === "mailto:tiny@brand.test" && line.level === 40,
        ),
      ).toBe(true);
      await expect
        .poll(() => inbox.messages.flatMap((message) => message.recipients).sort(), { timeout: 15_000 })
        .toEqual(["agg@reports.test", "dmarc@brand.test"]);
      // The next run finds nothing left to report for that day.
      expect(await reports.sendReports({ now: tomorrow() })).toEqual([]);
    });

    it("is a report mail that mailparser, our parser and Mail::DMARC read as the day's evaluations", async () => {
      const mail = inbox.messages[0]!;
      expect(mail.from).toBe("noreply-dmarc@mx.receiver.test");
      const parsed = await simpleParser(mail.bytes);
      expect(parsed.subject).toMatch(
        /^Report Domain: brand\.test Submitter: mx\.receiver\.test Report-ID: <.+@mx\.receiver\.test>$/,
      );
      const attachment = parsed.attachments.find((part) => part.contentType === "application/gzip")!;
      expect(attachment.filename).toMatch(/^mx\.receiver\.test!brand\.test!\d+!\d+!\w+\.xml\.gz$/);
      const [, , begin, end] = attachment.filename!.split("!");
      expect(Number(end) - Number(begin)).toBe(86_399);
      const report = parseAggregateReport(gunzipSync(attachment.content).toString());
      expect(report.metadata).toMatchObject({ orgName: "Receiver Test", email: "dmarc-contact@receiver.test" });
      expect(`${report.metadata.begin}`).toBe(begin);
      expect(report.policy).toMatchObject({
        domain: "brand.test",
        p: "reject",
        sp: "quarantine",
        adkim: "s",
        aspf: "r",
      });
      expect(report.records).toEqual([
        expect.objectContaining({
          sourceIp: "127.0.0.1",
          count: 3,
          disposition: "none",
          dkim: "fail",
          spf: "pass",
          headerFrom: "brand.test",
          envelopeFrom: "brand.test",
          dkimResults: [],
          spfResult: { domain: "brand.test", scope: "mfrom", result: "pass" },
        }),
        expect.objectContaining({
          count: 1,
          disposition: "reject",
          spf: "fail",
          headerFrom: "brand.test",
          envelopeFrom: "evil.test",
          spfResult: { domain: "evil.test", scope: "mfrom", result: "pass" },
        }),
        expect.objectContaining({ count: 1, disposition: "quarantine", spf: "fail", headerFrom: "sub.brand.test" }),
      ]);

      const file = join(dir, "report.eml");
      await writeFile(file, mail.bytes);
      const view = await readWithMailDmarc("message", file);
      expect(view).toMatchObject({ type: "aggregate", namespace_removed: true, envelope_to: "mx.receiver.test" });
      expect(view.metadata).toMatchObject({ org_name: "Receiver Test", report_id: report.metadata.reportId });
      expect(view.policy_published).toMatchObject({ domain: "brand.test", p: "reject", sp: "quarantine" });
      expect(
        view.records.map((record) => [
          record.row.source_ip,
          record.row.count,
          record.row.policy_evaluated.disposition,
          record.identifiers.header_from,
        ]),
      ).toEqual([
        ["127.0.0.1", "3", "none", "brand.test"],
        ["127.0.0.1", "1", "reject", "brand.test"],
        ["127.0.0.1", "1", "quarantine", "sub.brand.test"],
      ]);
    });
  });
}

endToEnd("file", "127.0.41");
endToEnd("postgres", "127.0.42");
