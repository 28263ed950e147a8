import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { buildReport, gzipReport, reportFileName } from "./report.ts";
import type { TlsResultRow } from "./store.ts";

const sts = {
  day: "2025-03-01",
  policyDomain: "example.com",
  policyType: "sts" as const,
  policyStrings: ["version: STSv1", "mode: enforce", "mx: *.mx.example.com", "max_age: 86400"],
  policyMxHost: "*.mx.example.com",
};
const row = (fields: Partial<TlsResultRow>): TlsResultRow => ({
  ...sts,
  result: "success",
  sendingIp: "",
  receivingIp: "",
  receivingMx: "",
  reasonCode: "",
  detail: "",
  count: 1,
  ...fields,
});

describe("the RFC 8460 report", () => {
  it("groups counters by policy, sums sessions, and details failures by type and hosts", () => {
    const report = buildReport(
      "2025-03-01",
      [
        row({ count: 40 }),
        row({
          result: "certificate-expired",
          sendingIp: "192.0.2.1",
          receivingIp: "198.51.100.7",
          receivingMx: "a.mx.example.com",
          reasonCode: "CERT_HAS_EXPIRED",
          count: 3,
        }),
        row({ policyType: "no-policy-found", policyStrings: [], policyMxHost: "b.mx.example.com", count: 2 }),
      ],
      { organizationName: "Postern Test", contactInfo: "postmaster@sender.test" },
      "r-1",
    );
    expect(report).toEqual({
      "organization-name": "Postern Test",
      "date-range": { "start-datetime": "2025-03-01T00:00:00Z", "end-datetime": "2025-03-01T23:59:59Z" },
      "contact-info": "postmaster@sender.test",
      "report-id": "r-1",
      policies: [
        {
          policy: {
            "policy-type": "sts",
            "policy-string": sts.policyStrings,
            "policy-domain": "example.com",
            "mx-host": "*.mx.example.com",
          },
          summary: { "total-successful-session-count": 40, "total-failure-session-count": 3 },
          "failure-details": [
            {
              "result-type": "certificate-expired",
              "sending-mta-ip": "192.0.2.1",
              "receiving-mx-hostname": "a.mx.example.com",
              "receiving-ip": "198.51.100.7",
              "failed-session-count": 3,
              "failure-reason-code": "CERT_HAS_EXPIRED",
            },
          ],
        },
        {
          policy: { "policy-type": "no-policy-found", "policy-domain": "example.com", "mx-host": "b.mx.example.com" },
          summary: { "total-successful-session-count": 2, "total-failure-session-count": 0 },
        },
      ],
    });
    expect(JSON.parse(gunzipSync(gzipReport(report)).toString())).toEqual(report);
  });

  it("names its file submitter!domain!begin!end!id.json.gz in epoch seconds (§5.1)", () => {
    expect(reportFileName("mta.sender.test", "example.com", "2025-03-01", "2025-03-01.abc")).toBe(
      "mta.sender.test!example.com!1740787200!1740873599!2025-03-01.abc.json.gz",
    );
  });
});
