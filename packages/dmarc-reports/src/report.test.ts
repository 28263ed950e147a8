// The report XML: built from counters, read back by our parser and by Mail::DMARC (Debian's
// libmail-dmarc-perl), with and without the DMARCbis namespace.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { makeTempDir } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishedPolicy } from "./policy-record.ts";
import { type AggregateReport, buildAggregateReport, gzipReport, reportFileName } from "./report.ts";
import type { DmarcResultRow } from "./store.ts";
import { readWithMailDmarc } from "./testing/mail-dmarc.ts";
import { dmarcNamespace, parseAggregateReport, reportToXml } from "./xml.ts";

const row = (fields: Partial<DmarcResultRow>): DmarcResultRow => ({
  day: "2025-03-01",
  policyDomain: "example.com",
  sourceIp: "192.0.2.10",
  headerFrom: "example.com",
  envelopeFrom: "example.com",
  disposition: "none",
  dkim: "pass",
  spf: "pass",
  reasons: [],
  dkimResults: [{ domain: "example.com", selector: "s1", result: "pass", humanResult: "" }],
  spfResult: { domain: "example.com", scope: "mfrom", result: "pass" },
  count: 1,
  ...fields,
});

const rows = [
  row({ count: 7 }),
  row({
    sourceIp: "2001:db8::25",
    headerFrom: "news.example.com",
    envelopeFrom: "",
    disposition: "reject",
    dkim: "fail",
    spf: "fail",
    dkimResults: [
      { domain: "example.com", selector: "s1", result: "fail", humanResult: "body hash did not verify" },
      { domain: "esp.example", selector: "k<1>", result: "pass", humanResult: "" },
    ],
    spfResult: { domain: "helo.example.net", scope: "helo", result: "softfail" },
  }),
  row({
    sourceIp: "198.51.100.7",
    disposition: "none",
    dkim: "fail",
    spf: "fail",
    reasons: [{ type: "trusted_forwarder", comment: "ARC chain of lists.example.org & co" }],
    dkimResults: [],
    spfResult: null,
    count: 2,
  }),
];

const policy = publishedPolicy("example.com", "v=DMARC1; p=reject; sp=quarantine; adkim=s; rua=mailto:d@example.com")!;
const report: AggregateReport = buildAggregateReport(
  "2025-03-01",
  rows,
  policy,
  {
    orgName: "Postern Test",
    email: "postmaster@mx.test",
    extraContactInfo: undefined,
    generator: "@postern/dmarc-reports",
  },
  "2025-03-01.abc123@mx.test",
);

describe("the aggregate report", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir("dmarc-report-xml");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("covers the UTC day, names the policy as published, one record per counter (largest first)", () => {
    expect(report.metadata).toMatchObject({
      begin: 1740787200,
      end: 1740873599,
      reportId: "2025-03-01.abc123@mx.test",
    });
    expect(report.policy).toEqual({
      domain: "example.com",
      discoveryMethod: "treewalk",
      p: "reject",
      sp: "quarantine",
      np: undefined,
      adkim: "s",
      aspf: "r",
      testing: "n",
      fo: "0",
    });
    expect(report.records.map((record) => [record.sourceIp, record.count])).toEqual([
      ["192.0.2.10", 7],
      ["198.51.100.7", 2],
      ["2001:db8::25", 1],
    ]);
    expect(reportFileName("mx.test", report)).toBe("mx.test!example.com!1740787200!1740873599!20250301abc123.xml.gz");
  });

  it("is XML in the DMARCbis namespace that our parser reads back to the same report", () => {
    const xml = reportToXml(report, { namespace: true });
    expect(xml).toMatch(
      /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2\.0">/,
    );
    expect(xml).toContain("<selector>k&lt;1&gt;</selector>");
    expect(xml).toContain("<envelope_from></envelope_from>");
    // The order the format prescribes.
    const order = ["<version>", "<report_metadata>", "<policy_published>", "<record>"].map((tag) => xml.indexOf(tag));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(parseAggregateReport(xml)).toEqual(report);
    expect(parseAggregateReport(gunzipSync(gzipReport(report, { namespace: true })).toString())).toEqual(report);
    expect(dmarcNamespace).toBe("urn:ietf:params:xml:ns:dmarc-2.0");
  });

  it("is refused by our parser when it is not a report", () => {
    const xml = reportToXml(report, { namespace: false });
    expect(() => parseAggregateReport(xml.replace(/<record>[\s\S]*<\/record>/, ""))).toThrow(
      /feedback\.record: .*expected at least one record|feedback\.record/,
    );
    expect(() => parseAggregateReport(xml.replace("<p>reject</p>", "<p>bounce</p>"))).toThrow(
      /feedback\.policy_published\.p/,
    );
    expect(() => parseAggregateReport(xml.replace("</feedback>", ""))).toThrow(/not a DMARC aggregate report/);
    expect(() => parseAggregateReport(`<!DOCTYPE x [<!ENTITY a "aaaa">]>${xml.slice(38)}`)).toThrow(/DOCTYPE/);
  });

  it("is read by Mail::DMARC (libmail-dmarc-perl) as the same report, with or without the namespace", async () => {
    for (const namespace of [true, false]) {
      const file = join(dir, `report-${namespace}.xml`);
      await writeFile(file, reportToXml(report, { namespace }));
      const view = await readWithMailDmarc("xml", file);
      expect(view.namespace_removed).toBe(namespace);
      expect(view.metadata).toMatchObject({
        org_name: "Postern Test",
        email: "postmaster@mx.test",
        report_id: "2025-03-01.abc123@mx.test",
        date_range: { begin: "1740787200", end: "1740873599" },
      });
      expect(view.policy_published).toEqual({
        domain: "example.com",
        p: "reject",
        sp: "quarantine",
        adkim: "s",
        aspf: "r",
      });
      expect(view.records).toHaveLength(3);
      const [first, second, third] = view.records;
      expect(first!.row).toEqual({
        source_ip: "192.0.2.10",
        count: "7",
        policy_evaluated: { disposition: "none", dkim: "pass", spf: "pass", reason: [] },
      });
      expect(second!.row.policy_evaluated.reason).toEqual([
        { type: "trusted_forwarder", comment: "ARC chain of lists.example.org & co" },
      ]);
      expect(third!.row).toMatchObject({
        source_ip: "2001:db8::25",
        policy_evaluated: { disposition: "reject", dkim: "fail", spf: "fail" },
      });
      expect(third!.identifiers).toMatchObject({ header_from: "news.example.com", envelope_from: "" });
      // Two <dkim> results; Mail::DMARC 1.20211209 reads each as the first (its loop asks the
      // record node, not the <dkim> node, for the values), so only the first is compared here —
      // our parser's round trip above checks them all.
      expect(third!.auth_results.dkim).toHaveLength(2);
      expect(third!.auth_results.dkim?.[0]).toMatchObject({ domain: "example.com", selector: "s1", result: "fail" });
      expect(third!.auth_results.spf).toEqual([{ domain: "helo.example.net", scope: "helo", result: "softfail" }]);
    }
  });
});
