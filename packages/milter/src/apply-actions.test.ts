// The adapter against what real milters send: each milter's end-of-message changes are captured
// at the protocol level (OpenDKIM, rspamd's milter worker) and applied to a MessageEditor that
// records the calls, so the mapping from milter action to rewriting API is checked on its own.
import { readdir, rm } from "node:fs/promises";
import { type RspamdWithMilter, startRspamd } from "@postern/rspamd/testing";
import { type FakeDns, makeTempDir, startFakeDns } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MilterAction } from "./actions.ts";
import { applyActions, type MessageEditor } from "./apply-actions.ts";
import { type MessageOutcome, MilterSession } from "./milter-session.ts";
import { parseMilterAddress } from "./options.ts";
import { ActionFlag } from "./protocol/constants.ts";
import { type OpenDkim, startOpenDkim } from "./testing/opendkim.ts";

type Call = [method: string, ...args: unknown[]];

/** A MessageEditor that records what it was asked to do (bodies read to text). */
function recordingEditor(): { editor: MessageEditor; calls: Call[] } {
  const calls: Call[] = [];
  const editor: MessageEditor = {
    addHeader: (...args) => void calls.push(["addHeader", ...args]),
    insertHeader: (...args) => void calls.push(["insertHeader", ...args]),
    changeHeader: (...args) => void calls.push(["changeHeader", ...args]),
    removeHeader: (...args) => void calls.push(["removeHeader", ...args]),
    async replaceBody(source) {
      const chunks: Buffer[] = [];
      if (typeof source === "string" || Buffer.isBuffer(source)) chunks.push(Buffer.from(source));
      else for await (const chunk of source) chunks.push(Buffer.from(chunk));
      calls.push(["replaceBody", Buffer.concat(chunks).toString()]);
    },
    async addRecipient(...args) {
      calls.push(["addRecipient", ...args]);
    },
    removeRecipient: (...args) => void calls.push(["removeRecipient", ...args]),
    quarantine: (...args) => void calls.push(["quarantine", ...args]),
    changeSender: (...args) => void calls.push(["changeSender", ...args]),
    discard: (text) => {
      calls.push(["discard", text]);
      return { kind: "discard", reason: text ?? "" };
    },
  };
  return { editor, calls };
}

const allActions =
  ActionFlag.addHeaders |
  ActionFlag.changeHeaders |
  ActionFlag.changeBody |
  ActionFlag.addRecipients |
  ActionFlag.addRecipientsWithParameters |
  ActionFlag.deleteRecipients |
  ActionFlag.quarantine |
  ActionFlag.changeFrom |
  ActionFlag.setSymbolList;

let spoolDir: string;

/** One whole milter conversation for one message; returns the milter's final reply and changes. */
async function converse(address: string, message: string, recipients = ["bob@example.net"]): Promise<MessageOutcome> {
  const session = new MilterSession(
    {
      name: "capture",
      address: parseMilterAddress(address)!,
      timeouts: { connectMs: 5000, commandMs: 5000, contentMs: 20_000 },
      actions: allActions,
    },
    spoolDir,
  );
  try {
    await session.open(
      { hostname: "client.test", family: "inet", port: 40_000, address: "127.0.0.1" },
      new Map([["j", "mx.test"]]),
    );
    await session.helo("client.test", new Map());
    await session.mail("alice@example.org", [], new Map([["i", "QUEUE1"]]));
    for (const recipient of recipients) await session.rcpt(recipient, [], new Map());
    const macros = new Map([["i", "QUEUE1"]]);
    return await session.message([Buffer.from(message.replace(/\r?\n/g, "\r\n"))], {
      data: macros,
      endOfHeaders: macros,
      endOfMessage: macros,
    });
  } finally {
    session.quit();
  }
}

const message = (extra = "") =>
  `From: <alice@example.org>\nTo: <bob@example.net>\nSubject: captured\nDate: Thu, 03 Dec 2026 08:00:00 +0000\nMessage-ID: <captured@example.org>\n${extra}\nHello.\n`;

beforeAll(async () => {
  spoolDir = await makeTempDir("milter-spool");
});
afterAll(async () => {
  await rm(spoolDir, { recursive: true, force: true });
});

describe("OpenDKIM's changes", () => {
  let dkim: OpenDkim;
  beforeAll(async () => {
    dkim = await startOpenDkim();
  });
  afterAll(() => dkim.stop());

  it("an SMFIR_INSHEADER at index 0 becomes insertHeader(0, DKIM-Signature, value without the leading space)", async () => {
    const outcome = await converse(dkim.address, message());
    expect(outcome.reply).toEqual({ kind: "accept" });
    const { editor, calls } = recordingEditor();
    await applyActions(editor, outcome.actions);
    expect(calls).toEqual([
      [
        "insertHeader",
        0,
        "DKIM-Signature",
        expect.stringMatching(/^v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.org;\r\n\ts=postern;/),
      ],
    ]);
  });
});

describe("rspamd's changes", () => {
  let dns: FakeDns;
  let rspamd: RspamdWithMilter;
  beforeAll(async () => {
    dns = await startFakeDns({});
    rspamd = await startRspamd({ dnsServer: dns.servers[0]!, milter: true });
  }, 90_000);
  afterAll(async () => {
    await rspamd.stop();
    await dns.close();
  });

  const applied = async (outcome: MessageOutcome) => {
    const { editor, calls } = recordingEditor();
    await applyActions(editor, outcome.actions);
    return calls;
  };

  it("header changes: addHeader, insertHeader(0, …), and changeHeader(name, 1, null) to remove", async () => {
    const outcome = await converse(
      rspamd.milterAddress,
      message("X-Test-Milter: one-header-each\nX-Remove-Me: please\n"),
    );
    expect(outcome.reply).toEqual({ kind: "accept" });
    const calls = await applied(outcome);
    expect(calls).toHaveLength(3);
    expect(calls).toEqual(
      expect.arrayContaining([
        ["changeHeader", "X-Remove-Me", 1, null],
        ["insertHeader", 0, "X-Inserted", "on top"],
        ["addHeader", "X-Added", "added by rspamd"],
      ]),
    );
  });

  it("recipient changes: addRecipient and removeRecipient, addresses without angle brackets", async () => {
    const outcome = await converse(rspamd.milterAddress, message("X-Test-Milter: recipients\n"), [
      "kept@example.net",
      "removed@example.net",
    ]);
    expect(await applied(outcome)).toEqual([
      ["addRecipient", "added@example.net"],
      ["removeRecipient", "removed@example.net"],
    ]);
  });

  it("sender change: SMFIR_CHGFROM, the address without angle brackets", async () => {
    const outcome = await converse(rspamd.milterAddress, message("X-Test-Milter: sender\n"));
    expect(outcome.reply).toEqual({ kind: "accept" });
    expect(await applied(outcome)).toEqual([["changeSender", "bounces@example.net", undefined]]);
  });

  it("quarantine: SMFIR_QUARANTINE with its reason, then accept", async () => {
    const outcome = await converse(rspamd.milterAddress, message("X-Test-Milter: quarantine\n"));
    expect(outcome.reply).toEqual({ kind: "accept" });
    expect(await applied(outcome)).toEqual([["quarantine", "Spam message quarantined"]]);
  });

  it("discard is the final reply, with no changes", async () => {
    const outcome = await converse(rspamd.milterAddress, message("X-Test-Milter: discard\n"));
    expect(outcome).toEqual({ reply: { kind: "discard" }, actions: [] });
  });

  it("a body replacement sent in many SMFIR_REPLBODY packets is spooled to a file, streamed, then removed", async () => {
    const outcome = await converse(rspamd.milterAddress, message("X-Test-Milter: large-body\n"));
    const replacement = outcome.actions.find(
      (action): action is Extract<MilterAction, { kind: "replaceBody" }> => action.kind === "replaceBody",
    );
    expect(replacement?.body.size).toBeGreaterThan(256 * 1024);
    expect(await readdir(spoolDir)).toHaveLength(1);
    const calls = await applied(outcome);
    expect(calls).toHaveLength(1);
    const [, body] = calls[0] as [string, string];
    expect(body).toBe("0123456789abcdef\r\n".repeat(20_000));
    expect(await readdir(spoolDir)).toHaveLength(0);
  });
});
