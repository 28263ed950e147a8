// An evaluation's counter: what of dmarcEvaluated a report keeps, and what it leaves out.
import type { DmarcEvaluatedEvent } from "@postern/dmarc";
import { describe, expect, it } from "vitest";
import { rowOf } from "./row.ts";

type Result = DmarcEvaluatedEvent["result"];

function event(result: Partial<Result>, envelope: { mailFrom?: string; spf?: DmarcEvaluatedEvent["spf"] } = {}) {
  const signature = (domain: string, outcome: "pass" | "fail", comment?: string) => ({
    domain,
    selector: "s1",
    result: outcome,
    comment,
  });
  return {
    at: Date.parse("2025-05-05T23:59:59Z"),
    transaction: {
      session: { remoteAddress: "::ffff:192.0.2.44" },
      mailFrom: { address: envelope.mailFrom ?? "bounce@Mail.Shop.Example" },
    },
    dkim: {
      signatures: [
        signature("esp.example", "pass"),
        signature("shop.example", "fail", "body hash did not verify"),
        signature("shop.example", "pass"),
      ],
    },
    spf: envelope.spf ?? [
      { method: "spf", text: "", result: "none", properties: { "smtp.helo": "client.example" } },
      { method: "spf", text: "", result: "softfail", properties: { "smtp.mailfrom": "bounce@mail.shop.example" } },
    ],
    result: {
      result: "pass",
      fromDomain: "Shop.Example",
      policyDomain: "shop.example",
      record: "v=DMARC1; p=reject",
      alignment: { spf: undefined, dkim: "shop.example" },
      disposition: { action: "accept", override: undefined },
      ...result,
    },
  } as unknown as DmarcEvaluatedEvent;
}

describe("rowOf", () => {
  it("keeps the day, the client, the identifiers and every DKIM result, aligned passes first", () => {
    expect(rowOf(event({}))).toEqual({
      day: "2025-05-05",
      policyDomain: "shop.example",
      sourceIp: "192.0.2.44",
      headerFrom: "shop.example",
      envelopeFrom: "mail.shop.example",
      disposition: "none",
      dkim: "pass",
      spf: "fail",
      reasons: [],
      dkimResults: [
        { domain: "shop.example", selector: "s1", result: "pass", humanResult: "" },
        { domain: "esp.example", selector: "s1", result: "pass", humanResult: "" },
        { domain: "shop.example", selector: "s1", result: "fail", humanResult: "body hash did not verify" },
      ],
      spfResult: { domain: "mail.shop.example", scope: "mfrom", result: "softfail" },
      count: 1,
    });
  });

  it("uses HELO's SPF result for the null sender", () => {
    const row = rowOf(event({}, { mailFrom: "" }));
    expect(row).toMatchObject({
      envelopeFrom: "",
      spfResult: { domain: "client.example", scope: "helo", result: "none" },
    });
    expect(rowOf(event({}, { spf: [] }))?.spfResult).toBeNull();
  });

  it("says why a failing message was not treated as published", () => {
    const failed = { result: "fail" as const, alignment: { spf: undefined, dkim: undefined } };
    expect(
      rowOf(event({ ...failed, disposition: { action: "accept", override: "trusted_forwarder" } }))?.reasons,
    ).toEqual([{ type: "trusted_forwarder", comment: "ARC chain of a trusted sealer passed" }]);
    expect(rowOf(event({ ...failed, disposition: { action: "accept", override: "local_policy" } }))?.reasons).toEqual([
      { type: "local_policy", comment: "" },
    ]);
    const testing = rowOf(
      event({
        ...failed,
        record: "v=DMARC1; p=reject; t=y",
        disposition: { action: "quarantine", override: undefined },
      }),
    );
    expect(testing).toMatchObject({ disposition: "quarantine", dkim: "fail", reasons: [{ type: "policy_test_mode" }] });
  });

  it("leaves out evaluations without a policy and undecided ones", () => {
    expect(rowOf(event({ result: "none", policyDomain: undefined }))).toBeUndefined();
    expect(rowOf(event({ result: "temperror" }))).toBeUndefined();
    expect(rowOf(event({ result: "fail", disposition: { action: "defer", override: undefined } }))).toBeUndefined();
  });
});
