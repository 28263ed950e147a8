// MAIL FROM / RCPT TO parameters smtp-server lets by although RFC 5321 §4.1.2 does not allow them:
// one without a keyword ("=x", which it drops silently) and "KEY=" with no value (which it takes
// for a bare keyword). smtp-adapter.ts answers both 501 5.5.4.
import { afterEach, describe, expect, it } from "vitest";
import {
  claimRecipients,
  connectSmtp,
  memoryQueue,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";
import { hasMalformedParameter } from "./smtp-adapter.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("parameter syntax", () => {
  it("tells malformed parameters from well-formed and unknown ones", () => {
    for (const line of [
      "MAIL FROM:<a@example.org> =x",
      "MAIL FROM:<a@example.org> SIZE=10 =",
      "MAIL FROM:<a@example.org>  SMTPUTF8=",
      "RCPT TO:<u@mx.test> NOTIFY=NEVER =x",
    ]) {
      expect(hasMalformedParameter(line), line).toBe(true);
    }
    for (const line of [
      "MAIL FROM:<a@example.org>",
      "MAIL FROM:<> SIZE=10 BODY=8BITMIME SMTPUTF8",
      "MAIL FROM:<a@example.org> ENVID=abc=",
      "MAIL FROM:<a@example.org> FOO=BAR", // unknown, not malformed: 555 from protocol.ts
      "RCPT TO:<u@mx.test> ORCPT=rfc822;u@mx.test",
      "MAIL FROM:a@example.org =x", // a path smtp-server refuses itself (501)
    ]) {
      expect(hasMalformedParameter(line), line).toBe(false);
    }
  });

  it("answers 501 5.5.4 over SMTP and the session goes on", async () => {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), queue.plugin] });
    const client = await connectSmtp(server.port);
    try {
      expect((await client.read()).code).toBe(220);
      expect((await client.command("EHLO client.test")).code).toBe(250);
      const mail = await client.command("MAIL FROM:<a@example.org> =x");
      expect([mail.code, mail.text]).toEqual([501, "5.5.4 Bad parameter syntax"]);
      expect((await client.command("MAIL FROM:<a@example.org> SMTPUTF8=")).code).toBe(501);
      expect((await client.command("MAIL FROM:<a@example.org>")).code).toBe(250);
      const rcpt = await client.command("RCPT TO:<u@mx.test> =x");
      expect([rcpt.code, rcpt.text]).toEqual([501, "5.5.4 Bad parameter syntax"]);
      expect((await client.command("RCPT TO:<u@mx.test>")).code).toBe(250);
    } finally {
      client.close();
    }
  });
});
