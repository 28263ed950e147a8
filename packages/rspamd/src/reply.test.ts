// rspamd's reply parsed as the protocol describes it (the shapes its milter block takes), and
// replies that are not scan results refused with a code, never guessed at.
import { describe, expect, it } from "vitest";
import { RspamdError } from "./errors.ts";
import { parseReply } from "./reply.ts";
import { resultHeaderValue } from "./result-header.ts";

const base = { action: "no action", score: 1.5, required_score: 15 };

describe("parseReply", () => {
  it("reads rspamd's fields, symbols strongest first, time in ms", () => {
    const reply = parseReply(
      JSON.stringify({
        ...base,
        is_skipped: false,
        symbols: {
          SMALL: { name: "SMALL", score: 0.1 },
          NEGATIVE: { name: "NEGATIVE", score: -2, options: ["a", 7] },
          BIG: { name: "BIG", score: 3.4, options: ["x"] },
        },
        messages: { smtp_message: "go away" },
        "message-id": "id@example.org",
        time_real: 0.0125,
        extra_field_from_a_newer_rspamd: { anything: true },
      }),
    );
    expect(reply).toMatchObject({
      action: "no action",
      score: 1.5,
      requiredScore: 15,
      skipped: false,
      smtpMessage: "go away",
      messageId: "id@example.org",
      scanMs: 12.5,
      milter: undefined,
      dkimSignatures: [],
    });
    expect(reply.symbols.map((symbol) => symbol.name)).toEqual(["BIG", "NEGATIVE", "SMALL"]);
    expect(reply.symbols[1]!.options).toEqual(["a", "7"]);
  });

  it("reads every form of the milter block", () => {
    const reply = parseReply(
      JSON.stringify({
        ...base,
        action: "reject",
        milter: {
          add_headers: {
            "X-Plain": "value",
            "X-Ordered": { value: "top", order: 0 },
            "X-Many": [{ value: "one" }, { value: "two", order: -1 }],
          },
          remove_headers: { "X-All": 0, "X-Last": -1, "X-First": 1 },
          add_rcpt: ["<added@example.net>", "plain@example.net"],
          del_rcpt: ["gone@example.net"],
          change_from: "<srs@example.net>",
          reject: "discard",
          spam_header: { "X-Spam-Flag": "YES" },
          no_action: false,
        },
        "dkim-signature": ["v=1; first", "v=1; second"],
      }),
    );
    expect(reply.milter).toEqual({
      addHeaders: [
        { name: "X-Plain", value: "value", order: undefined },
        { name: "X-Ordered", value: "top", order: 0 },
        { name: "X-Many", value: "one", order: undefined },
        { name: "X-Many", value: "two", order: -1 },
      ],
      removeHeaders: [
        { name: "X-All", occurrence: 0 },
        { name: "X-Last", occurrence: -1 },
        { name: "X-First", occurrence: 1 },
      ],
      addRecipients: ["added@example.net", "plain@example.net"],
      removeRecipients: ["gone@example.net"],
      changeFrom: "srs@example.net",
      rejectAs: "discard",
      spamHeader: { "X-Spam-Flag": "YES" },
      noAction: false,
    });
    expect(reply.dkimSignatures).toEqual(["v=1; first", "v=1; second"]);
    expect(parseReply(JSON.stringify({ ...base, "dkim-signature": "v=1; one" })).dkimSignatures).toEqual(["v=1; one"]);
  });

  it.each([
    ["not JSON", "<html>502 Bad Gateway</html>", /^rspamd's reply is not JSON: "<html>502 Bad Gateway<\/html>"$/],
    ["no score", JSON.stringify({ action: "reject", required_score: 15 }), /\(score: /],
    ["an error object", JSON.stringify({ error: "task timeout" }), /not a scan result \(action: /],
    [
      "an action nobody knows",
      JSON.stringify({ ...base, action: "junk" }),
      /the action "junk", which Postern does not know/,
    ],
    [
      "a field name with a space",
      JSON.stringify({ ...base, milter: { add_headers: { "Bad Name": "x" } } }),
      /milter\.add_headers\.Bad Name: Invalid key in record\)$/,
    ],
  ])("refuses %s as a bad reply", (_what, body, message) => {
    let caught: unknown;
    try {
      parseReply(body);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RspamdError);
    expect((caught as RspamdError).code).toBe("POSTERN_RSPAMD_BAD_REPLY");
    expect((caught as RspamdError).message).toMatch(message);
  });
});

describe("the score header", () => {
  it("is written like rspamd's X-Spamd-Result and folded between symbols", () => {
    const reply = parseReply(
      JSON.stringify({
        action: "reject",
        score: 16.2,
        required_score: 15,
        symbols: {
          GTUBE: { score: 15 },
          R_SPF_ALLOW: { score: -0.2, options: ["+ip4:192.0.2.0/24"] },
          MIME_GOOD: { score: -0.1, options: ["text/plain"] },
          ARC_NA: { score: 0 },
          "WITH\r\nNEWLINE": { score: 1.5, options: ["a\tb"] },
        },
      }),
    );
    const value = resultHeaderValue(reply, { name: "X-Spamd-Result", symbols: true });
    expect(value).toBe(
      [
        "default: True [16.20 / 15.00]; GTUBE(15.00)[];",
        "\tWITH NEWLINE(1.50)[a b]; R_SPF_ALLOW(-0.20)[+ip4:192.0.2.0/24];",
        "\tMIME_GOOD(-0.10)[text/plain]; ARC_NA(0.00)[]",
      ].join("\r\n"),
    );
    for (const line of value.split("\r\n")) expect(line.length).toBeLessThanOrEqual(78);
    expect(resultHeaderValue(reply, { name: "X-Spamd-Result", symbols: false })).toBe("default: True [16.20 / 15.00]");
  });
});
