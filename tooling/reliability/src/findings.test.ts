// Bugs the fault and fuzz suites found outside this package (core, smtp-server's defaults), one
// test each, written as the behaviour should be. A finding still open is marked `.fails`, so the
// suite stays green while the bug stands and turns red the day it is fixed — then drop `.fails`
// (and the matching known gap in fuzz/cases.ts). All of them are fixed now (README).
//   pnpm --filter @postern/reliability test:findings
import { join } from "node:path";
import type { Plugin } from "@postern/core";
import { claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPeer } from "./support/raw-exchange.ts";
import { mountSmallDisk } from "./support/small-disk.ts";

let server: TestServer;
const fieldNames: string[][] = [];
const headerProbe: Plugin = {
  name: "reliability:findings-headers",
  hooks: {
    data(_transaction, message) {
      fieldNames.push([...message.headers].map((field) => field.name));
      return undefined;
    },
  },
};

beforeAll(async () => {
  server = await startTestServer({ plugins: [claimRecipients(), headerProbe, memoryQueue().plugin] });
});
afterAll(async () => {
  await server?.stop();
});

/** The final replies to `lines` after the greeting (EHLO first). */
async function replies(lines: string[], port = server.port): Promise<string[]> {
  const peer = await openPeer(port);
  try {
    await peer.waitForLine(/^220 /);
    await peer.write(["EHLO findings.test", ...lines, "QUIT"].map((line) => `${line}\r\n`).join(""));
    await peer.waitForClose(10_000);
    return peer
      .transcript()
      .lines.filter((line) => /^\d{3} /.test(line))
      .slice(2);
  } finally {
    peer.destroy();
  }
}

async function fieldsOf(message: string): Promise<string[]> {
  const before = fieldNames.length;
  const answered = await replies(["MAIL FROM:<a@example.org>", "RCPT TO:<u@mx.test>", "DATA", `${message}\r\n.`]);
  expect(answered.at(-2)).toMatch(/^250 /);
  expect(fieldNames.length).toBe(before + 1);
  return fieldNames.at(-1)!;
}

describe("findings (fixed in core)", () => {
  // packages/core/src/headers.ts:65 (parseHeaderSegments) looks for the colon in the whole folded
  // group, so a line that is not a field, followed by a folded line holding a colon, becomes a
  // field whose name has CRLF.
  it("a field name never spans a folded line", async () => {
    const names = await fieldsOf("Subject: x\r\n..\r\n |KbEu(: y\r\n\r\nbody");
    for (const name of names) expect(name).not.toMatch(/[\r\n]/);
  });

  // Core keeps listing fields after a line that is not one; Postfix and mail readers end the header
  // section there, so a From below it is seen by Postern's plugins (DMARC) but is body to them.
  it("the header section ends at the first line that is not a field", async () => {
    const names = await fieldsOf("Subject: a\r\nnot a field\r\nFrom: <evil@example.net>\r\n\r\nbody");
    expect(names).toEqual(["Received", "Subject"]); // core's Received on top, and nothing below the non-field line
  });

  // RFC 5321 §4.1.1.11: a parameter the server does not know is answered 555. Core's onMailFrom
  // (packages/core/src/protocol.ts:271) and onRcptTo (:289) take whatever smtp-server parsed.
  it("MAIL FROM with an unknown parameter is refused with 555", async () => {
    expect((await replies(["MAIL FROM:<a@example.org> FOO=BAR"]))[0]).toMatch(/^555 /);
  });

  it("RCPT TO with an unknown parameter is refused with 555", async () => {
    expect((await replies(["MAIL FROM:<a@example.org>", "RCPT TO:<u@mx.test> FOO=BAR"]))[1]).toMatch(/^555 /);
  });

  // smtp-server drops a parameter given as `=x` (an empty keyword) silently; core's smtp-adapter.ts
  // answers it 501 5.5.4 from the raw command line.
  it("a parameter without a keyword is a syntax error", async () => {
    expect((await replies(["MAIL FROM:<a@example.org> =x"]))[0]).toMatch(/^501 5\.5\.4 /);
    expect((await replies(["MAIL FROM:<a@example.org>", "RCPT TO:<u@mx.test> =x"]))[1]).toMatch(/^501 5\.5\.4 /);
  });

  // RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter on MAIL FROM.
  it("a non-ASCII address without SMTPUTF8 is refused", async () => {
    expect((await replies(["MAIL FROM:<jörg@example.org>"]))[0]).toMatch(/^553 5\.6\.7 /);
  });

  // RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str]; a label cannot start with a hyphen.
  it("a domain label starting with a hyphen is refused", async () => {
    expect((await replies(["MAIL FROM:<a@-example.org>"]))[0]).toMatch(/^5\d\d /);
  });

  // A full spool disk is answered with the catch-all 451 4.3.0 "Temporary local problem" (core's
  // DATA path, packages/core/src/message-path.ts:206, logs it as "DATA failed"); RFC 5321 has 452 and
  // RFC 3463 4.3.1 ("mail system full") for it, which tells the operator and the client what it is.
  it("a full spool disk answers 452 4.3.1", async () => {
    const disk = await mountSmallDisk(1);
    const spooled = await startTestServer({
      plugins: [claimRecipients(), memoryQueue().plugin],
      config: { spoolDir: join(disk.dir, "spool"), limits: { memoryThreshold: "1KB" } },
    });
    try {
      await disk.fill();
      const body = `Subject: big\r\n\r\n${"x".repeat(76)}\r\n`.repeat(40);
      const answered = await replies(
        ["MAIL FROM:<a@example.org>", "RCPT TO:<u@mx.test>", "DATA", `${body}.`],
        spooled.port,
      );
      expect(answered.at(-2)).toMatch(/^452 4\.3\.1 /);
    } finally {
      await spooled.stop();
      await disk.unmount();
    }
  });
});
