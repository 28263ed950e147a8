// A milter's answers as SMTP replies: its own code and text kept, the usual texts otherwise.
import { describe, expect, it } from "vitest";
import { headerValue } from "./actions.ts";
import { defaultActionVerdict, replyCodeVerdict, stageVerdict } from "./verdicts.ts";

describe("verdicts", () => {
  it("keeps a milter's reply code, enhanced status and text (SMFIR_REPLYCODE)", () => {
    expect(replyCodeVerdict(554, "5.7.1 Gtube pattern")).toMatchObject({
      kind: "reject",
      code: 554,
      status: "5.7.1",
      text: "Gtube pattern",
    });
    expect(replyCodeVerdict(450, "4.2.0 Greylisted")).toMatchObject({ kind: "defer", code: 450, status: "4.2.0" });
  });

  it("joins a multi-line reply and replaces a status of the wrong class", () => {
    expect(replyCodeVerdict(550, "5.7.1 Spam\r\n550 5.7.1 See the policy")).toMatchObject({
      text: "Spam See the policy",
      status: "5.7.1",
    });
    expect(replyCodeVerdict(451, "5.7.1 mixed up")).toMatchObject({ kind: "defer", code: 451, status: "4.7.1" });
    expect(replyCodeVerdict(550, "")).toMatchObject({ text: "Refused by a mail filter" });
  });

  it("maps reject, tempfail and connection failure by stage; continue, accept and discard pass", () => {
    expect(stageVerdict({ kind: "reject" }, "rcpt")).toMatchObject({
      code: 550,
      text: "Recipient refused by a mail filter",
    });
    expect(stageVerdict({ kind: "tempfail" }, "data")).toMatchObject({ code: 451, status: "4.7.1" });
    expect(stageVerdict({ kind: "disconnect" }, "helo")).toMatchObject({ kind: "disconnect", code: 421 });
    for (const kind of ["continue", "accept", "discard"] as const)
      expect(stageVerdict({ kind }, "mail")).toBeUndefined();
  });

  it("answers a failed milter's default action", () => {
    expect(defaultActionVerdict("tempfail", "mail")).toMatchObject({ code: 451, status: "4.7.1" });
    expect(defaultActionVerdict("reject", "rcpt")).toMatchObject({ code: 550, status: "5.7.1" });
  });

  it("turns a milter's header value into what the rewriting API takes", () => {
    expect(headerValue(" v=1;\n\tb=abc", true)).toBe("v=1;\r\n\tb=abc");
    expect(headerValue(" kept", false)).toBe(" kept");
    expect(headerValue("a\r\n b", false)).toBe("a\r\n b");
  });
});
