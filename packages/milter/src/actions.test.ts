// The reply-to-action mapping for the envelope changes (their ESMTP parameters parsed as MAIL FROM
// and RCPT TO give them to plugins).
import { describe, expect, it } from "vitest";
import { actionOf, esmtpParameters } from "./actions.ts";

describe("esmtpParameters", () => {
  it("upper-cases keywords, keeps values as sent, gives a bare keyword as true", () => {
    expect(esmtpParameters("notify=SUCCESS,FAILURE  ORCPT=rfc822;Alice@Example.org\tSMTPUTF8")).toEqual({
      NOTIFY: "SUCCESS,FAILURE",
      ORCPT: "rfc822;Alice@Example.org",
      SMTPUTF8: true,
    });
  });

  it("is undefined for none", () => {
    expect(esmtpParameters(undefined)).toBeUndefined();
    expect(esmtpParameters("  ")).toBeUndefined();
  });
});

describe("actionOf for envelope changes", () => {
  it("SMFIR_CHGFROM becomes changeSender with its parameters", () => {
    expect(actionOf({ type: "changeFrom", address: "srs0=x@fwd.example", parameters: "BODY=8BITMIME" }, false)).toEqual(
      { kind: "changeSender", address: "srs0=x@fwd.example", parameters: { BODY: "8BITMIME" } },
    );
  });

  it("SMFIR_ADDRCPT_PAR keeps its parameters, SMFIR_ADDRCPT has none", () => {
    expect(actionOf({ type: "addRecipient", address: "a@b.example", parameters: "NOTIFY=NEVER" }, false)).toEqual({
      kind: "addRecipient",
      address: "a@b.example",
      parameters: { NOTIFY: "NEVER" },
    });
    expect(actionOf({ type: "addRecipient", address: "a@b.example", parameters: undefined }, false)).toEqual({
      kind: "addRecipient",
      address: "a@b.example",
      parameters: undefined,
    });
  });
});
