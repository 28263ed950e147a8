// @postern/milter against real milters from Debian — OpenDKIM, clamav-milter (with a real clamd),
// rspamd's proxy worker in milter mode — started here on loopback, driven over real SMTP, with the
// stored bytes checked (DKIM signatures by dkimpy, an independent implementation).
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type Clamd, eicarTestFile, startClamd } from "@postern/clamav/testing";
import { ConfigError, type Plugin } from "@postern/core";
import { type RspamdWithMilter, startRspamd } from "@postern/rspamd/testing";
import {
  buildMessage,
  claimRecipients,
  type FakeDns,
  freePort,
  type MemoryQueue,
  memoryQueue,
  type SendError,
  startFakeDns,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import milter, { type MilterConfig, type MilterOptions } from "./index.ts";
import { type ClamavMilter, startClamavMilter } from "./testing/clamav-milter.ts";
import { type OpenDkim, startOpenDkim } from "./testing/opendkim.ts";

const run = promisify(execFile);
const verifyScript = fileURLToPath(new URL("../test-fixtures/dkim-verify.py", import.meta.url));

let scratch: string;
let server: TestServer | undefined;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "postern-milter-test-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(milters: MilterConfig[], extra: { before?: Plugin[]; after?: Plugin[] } = {}) {
  const queue: MemoryQueue = memoryQueue();
  server = await startTestServer({
    plugins: [...(extra.before ?? []), claimRecipients(), milter({ milters }), ...(extra.after ?? []), queue.plugin],
  });
  return { server, queue };
}

async function refusal(promise: Promise<unknown>): Promise<SendError> {
  const error = await promise.then(
    () => undefined,
    (caught: SendError) => caught,
  );
  if (!error) throw new Error("the message was accepted");
  return error;
}

/** dkimpy's verdict on every signature of `bytes`. */
async function dkimpy(
  bytes: Buffer,
  records: Record<string, string>,
): Promise<{ domain: string; selector: string; headers: string; valid: boolean }[]> {
  const id = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const messageFile = join(scratch, `${id}.eml`);
  const recordsFile = join(scratch, `${id}.json`);
  await writeFile(messageFile, bytes);
  await writeFile(recordsFile, JSON.stringify(records));
  const { stdout } = await run("/usr/bin/python3", [verifyScript, messageFile, recordsFile]);
  return JSON.parse(stdout);
}

/** A multipart message with one base64 attachment: a scanner must decode the part to see it. */
function multipartWithAttachment(content: string): Buffer {
  const base64 = Buffer.from(content, "latin1").toString("base64");
  return Buffer.from(
    [
      "From: <sender@example.org>",
      "To: <user@localhost>",
      "Subject: Tool attached",
      "Message-ID: <attachment@example.org>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain",
      "",
      "See attached.",
      "--b1",
      'Content-Type: application/octet-stream; name="tool.com"',
      "Content-Transfer-Encoding: base64",
      'Content-Disposition: attachment; filename="tool.com"',
      "",
      base64,
      "--b1--",
      "",
    ].join("\r\n"),
  );
}

const recordOf = (dkim: OpenDkim) => ({ [`${dkim.selector}._domainkey.${dkim.domain}`]: dkim.record });

/** The header block of stored bytes, one entry per field (folding kept). */
function fieldsOf(bytes: Buffer): string[] {
  const text = bytes.toString("latin1");
  const head = text.slice(0, text.indexOf("\r\n\r\n") + 2);
  return head.split(/\r\n(?![ \t])/).filter(Boolean);
}

const signedMessage = () =>
  buildMessage({
    from: "alice@example.org",
    to: "bob@example.net",
    // Folded on purpose: with simple canonicalization every byte of it must reach the milter as stored.
    subject: "Quarterly figures\r\n\tand a folded subject line",
    text: "Hello Bob,\n\nthe figures are attached.\n",
  });

describe("OpenDKIM signs through the milter", () => {
  let relaxed: OpenDkim;
  let simpleOnUnixSocket: OpenDkim;
  beforeAll(async () => {
    [relaxed, simpleOnUnixSocket] = await Promise.all([
      startOpenDkim({ canonicalization: "relaxed/relaxed" }),
      startOpenDkim({ canonicalization: "simple/simple", unixSocket: true, selector: "simple" }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([relaxed.stop(), simpleOnUnixSocket.stop()]);
  });

  it("stores a DKIM-Signature on top that dkimpy verifies (relaxed/relaxed, TCP)", async () => {
    const { server, queue } = await start([{ address: relaxed.address }]);
    await server.send({ from: "alice@example.org", to: "bob@example.net", raw: signedMessage() });
    const stored = queue.messages[0]!.bytes;
    expect(fieldsOf(stored)[0]).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.org;/);
    expect(await dkimpy(stored, recordOf(relaxed))).toEqual([
      { domain: "example.org", selector: "postern", headers: expect.stringContaining("Subject"), valid: true },
    ]);
  });

  it("passes every header byte as stored: simple/simple verifies too (Unix socket)", async () => {
    const { server, queue } = await start([{ address: simpleOnUnixSocket.address }]);
    await server.send({ from: "alice@example.org", to: "bob@example.net", raw: signedMessage() });
    const stored = queue.messages[0]!.bytes;
    expect(await dkimpy(stored, recordOf(simpleOnUnixSocket))).toEqual([
      { domain: "example.org", selector: "simple", headers: expect.any(String), valid: true },
    ]);
  });

  it("keeps one milter connection for several messages of a session", async () => {
    const { server, queue } = await start([{ address: relaxed.address }]);
    const client = await server.connect();
    await client.read();
    await client.command("EHLO client.test");
    for (const subject of ["first", "second"]) {
      await client.command("MAIL FROM:<alice@example.org>");
      await client.command("RCPT TO:<bob@example.net>");
      await client.command("DATA");
      const data = buildMessage({ from: "alice@example.org", to: "bob@example.net", subject });
      expect((await client.command(`${data.toString()}.`)).code).toBe(250);
    }
    await client.command("QUIT");
    expect(queue.messages).toHaveLength(2);
    for (const message of queue.messages) {
      expect((await dkimpy(message.bytes, recordOf(relaxed)))[0]?.valid).toBe(true);
    }
  });
});

describe("clamav-milter with a real clamd", () => {
  let clamd: Clamd;
  let clamavMilter: ClamavMilter;
  beforeAll(async () => {
    clamd = await startClamd();
    clamavMilter = await startClamavMilter(clamd);
  });
  afterAll(async () => {
    await clamavMilter.stop();
    await clamd.stop();
  });

  const withAttachment = (content: string) => multipartWithAttachment(content);

  it("rejects the EICAR test file with clamav-milter's own reply", async () => {
    const { server, queue } = await start([{ address: clamavMilter.address }]);
    const error = await refusal(server.send({ to: "user@localhost", raw: withAttachment(eicarTestFile()) }));
    expect(error.response).toBe("550 5.7.1 Virus found: Eicar-Test-Signature.UNOFFICIAL");
    expect(queue.messages).toHaveLength(0);
  });

  it("passes a clean message with the fields clamav-milter inserts", async () => {
    const { server, queue } = await start([{ address: clamavMilter.address }]);
    await server.send({ to: "user@localhost", raw: withAttachment("harmless bytes") });
    // clamav-milter inserts its fields below the top one (our Received), with SMFIR_INSHEADER.
    const fields = fieldsOf(queue.messages[0]!.bytes);
    expect(fields.slice(0, 3)).toEqual([
      expect.stringMatching(/^Received: /),
      "X-Virus-Status: Clean",
      expect.stringMatching(/^X-Virus-Scanned: clamav-milter \d/),
    ]);
  });
});

describe("rspamd's proxy worker in milter mode", () => {
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

  const gtube = ["XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-", "UBE-TEST-EMAIL*C.34X"].join("");

  it("rejects GTUBE with rspamd's reply code and text", async () => {
    const { server, queue } = await start([{ address: rspamd.milterAddress }]);
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage({ text: `${gtube}\n` }) }));
    expect(error.response).toBe("554 5.7.1 Gtube pattern");
    expect(queue.messages).toHaveLength(0);
  });

  it("applies its header changes: appended, inserted on top, removed", async () => {
    const { server, queue } = await start([{ address: rspamd.milterAddress }]);
    const raw = buildMessage({ headers: { "X-Test-Milter": "one-header-each", "X-Remove-Me": "please" } });
    await server.send({ to: "user@localhost", raw });
    const fields = fieldsOf(queue.messages[0]!.bytes);
    expect(fields[0]).toBe("X-Inserted: on top");
    expect(fields.at(-1)).toBe("X-Added: added by rspamd");
    expect(fields.some((field) => field.startsWith("X-Remove-Me"))).toBe(false);
    expect(fields.filter((field) => field.startsWith("X-Test-Milter"))).toHaveLength(1);
  });

  it("adds and removes recipients", async () => {
    const { server, queue } = await start([{ address: rspamd.milterAddress }]);
    await server.send({
      to: ["kept@example.net", "removed@example.net"],
      raw: buildMessage({ headers: { "X-Test-Milter": "recipients" } }),
    });
    expect(queue.messages[0]!.recipients.sort()).toEqual(["added@example.net", "kept@example.net"]);
  });

  it("changes the envelope sender: the message is stored with the milter's MAIL FROM", async () => {
    const { server, queue } = await start([{ address: rspamd.milterAddress }]);
    await server.send({
      from: "original@example.org",
      to: "user@localhost",
      raw: buildMessage({ headers: { "X-Test-Milter": "sender" } }),
    });
    expect(queue.messages[0]!.from).toBe("bounces@example.net");
  });

  it("does not offer a sender change left out of actions: the milter's change is a protocol error, default action", async () => {
    const { server, queue } = await start([
      { address: rspamd.milterAddress, actions: ["addHeaders", "changeHeaders", "addRecipients", "deleteRecipients"] },
    ]);
    const error = await refusal(
      server.send({ to: "user@localhost", raw: buildMessage({ headers: { "X-Test-Milter": "sender" } }) }),
    );
    expect(error.response).toMatch(/^451 4\./);
    expect(queue.messages).toHaveLength(0);
  });

  it("quarantines: the message is stored under the quarantine route", async () => {
    const { server, queue } = await start([{ address: rspamd.milterAddress }]);
    await server.send({ to: "user@localhost", raw: buildMessage({ headers: { "X-Test-Milter": "quarantine" } }) });
    expect(queue.messages.map((message) => message.route)).toEqual(["quarantine"]);
    expect(queue.messages[0]!.transaction.quarantined?.reason).toBe("Spam message quarantined");
  });

  it("discards: the client hears 250, nothing is stored", async () => {
    const { server, queue } = await start([{ address: rspamd.milterAddress }]);
    const sent = await server.send({
      to: "user@localhost",
      raw: buildMessage({ headers: { "X-Test-Milter": "discard" } }),
    });
    expect(sent.response).toMatch(/^250 /);
    expect(queue.messages).toHaveLength(0);
  });

  it("replaces the body", async () => {
    const { server, queue } = await start([{ address: rspamd.milterAddress }]);
    await server.send({ to: "user@localhost", raw: buildMessage({ headers: { "X-Test-Milter": "body" } }) });
    const stored = queue.messages[0]!.bytes.toString();
    expect(stored).toContain("The body rspamd wrote.");
    expect(stored).not.toContain("Hello from the Postern test kit.");
  });

  it("runs milters in order, each seeing the changes of the one before (OpenDKIM signs rspamd's field)", async () => {
    const dkim = await startOpenDkim({ signHeaders: "From,To,Subject,Date,X-Inserted" });
    try {
      const { server, queue } = await start([{ address: rspamd.milterAddress }, { address: dkim.address }]);
      await server.send({
        from: "alice@example.org",
        to: "bob@example.net",
        raw: buildMessage({
          from: "alice@example.org",
          to: "bob@example.net",
          headers: { "X-Test-Milter": "one-header-each" },
        }),
      });
      const [signature] = await dkimpy(queue.messages[0]!.bytes, recordOf(dkim));
      expect(signature).toMatchObject({ valid: true, headers: expect.stringMatching(/X-Inserted/i) });
    } finally {
      await dkim.stop();
    }
  });

  it("stops at the first milter that refuses: a GTUBE message never reaches the second", async () => {
    const dkim = await startOpenDkim();
    try {
      const { server } = await start([{ address: rspamd.milterAddress }, { address: dkim.address }]);
      const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage({ text: `${gtube}\n` }) }));
      expect(error.responseCode).toBe(554);
    } finally {
      await dkim.stop();
    }
  });
});

describe("a milter that fails gets its default action", () => {
  let dkim: OpenDkim;
  afterEach(async () => {
    await dkim?.stop();
  });

  const warnings = (test: TestServer) =>
    test.logs.filter((record) => record.plugin === "@postern/milter" && record.level === 40);

  it("unreachable: 451 4.7.1 from MAIL FROM on, one log line naming the milter and the cause", async () => {
    const port = await freePort();
    const { server } = await start([{ address: `inet:127.0.0.1:${port}`, name: "gone" }]);
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toBe("451 4.7.1 Mail filter unavailable, try again later");
    expect(error.command).toBe("MAIL FROM");
    const lines = warnings(server);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ code: "POSTERN_MILTER_UNREACHABLE", milter: "gone", action: "tempfail" });
    expect(lines[0]!.msg).toMatch(
      /^milter gone failed at connect: cannot connect to inet:127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
    );
  });

  it("unreachable with defaultAction accept: mail flows as if it were not configured", async () => {
    const port = await freePort();
    const { server, queue } = await start([{ address: `inet:127.0.0.1:${port}`, defaultAction: "accept" }]);
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(queue.messages).toHaveLength(1);
  });

  /** A plugin whose data hook kills the milter: it dies with the message open (after RCPT). */
  const killer = (): Plugin => ({
    name: "test:kills-the-milter",
    hooks: {
      async data() {
        await dkim.kill();
        return undefined;
      },
    },
  });

  it.each([
    ["tempfail", /^451 4\.7\.1 Mail filter unavailable, try again later$/],
    ["reject", /^550 5\.7\.1 Message refused by a mail filter \(filter unavailable\)$/],
  ] as const)("dies mid-message, defaultAction %s", async (defaultAction, reply) => {
    dkim = await startOpenDkim();
    const { server, queue } = await start([{ address: dkim.address, name: "opendkim", defaultAction }], {
      before: [killer()],
    });
    const error = await refusal(
      server.send({ from: "alice@example.org", to: "bob@example.net", raw: signedMessage() }),
    );
    expect(error.response).toMatch(reply);
    expect(queue.messages).toHaveLength(0);
    expect(warnings(server)).toEqual([
      expect.objectContaining({ code: "POSTERN_MILTER_CLOSED", milter: "opendkim", action: defaultAction }),
    ]);
  });

  it("dies mid-message, defaultAction accept: stored unsigned", async () => {
    dkim = await startOpenDkim();
    const { server, queue } = await start([{ address: dkim.address, defaultAction: "accept" }], {
      before: [killer()],
    });
    await server.send({ from: "alice@example.org", to: "bob@example.net", raw: signedMessage() });
    expect(queue.messages).toHaveLength(1);
    expect(queue.messages[0]!.bytes.toString()).not.toContain("DKIM-Signature");
  });

  it("hangs (SIGSTOP) past timeouts.contentMs: the default action, and the session goes on", async () => {
    dkim = await startOpenDkim();
    const pauser: Plugin = {
      name: "test:pauses-the-milter",
      hooks: {
        data() {
          dkim.pause();
          return undefined;
        },
      },
    };
    const { server } = await start(
      [{ address: dkim.address, name: "hung", timeouts: { connectMs: 1000, commandMs: 1000, contentMs: 1500 } }],
      { before: [pauser] },
    );
    const error = await refusal(
      server.send({ from: "alice@example.org", to: "bob@example.net", raw: signedMessage() }),
    );
    expect(error.response).toBe("451 4.7.1 Mail filter unavailable, try again later");
    expect(warnings(server)).toEqual([expect.objectContaining({ code: "POSTERN_MILTER_TIMEOUT", milter: "hung" })]);
    dkim.resume();
  });
});

describe("options", () => {
  it.each([
    [{}, /^@postern\/milter\.milters: /],
    [{ milters: [] }, /^@postern\/milter\.milters: expected at least one milter/],
    [{ milters: [{ address: "127.0.0.1:8891" }] }, /^@postern\/milter\.milters\.0\.address: expected "inet:HOST:PORT"/],
    [
      { milters: [{ address: "inet:8891@localhost", defaultAction: "ignore" }] },
      /^@postern\/milter\.milters\.0\.defaultAction: /,
    ],
    [
      { milters: [{ address: "unix:/run/x.sock", timeouts: { contentMs: 0 } }] },
      /^@postern\/milter\.milters\.0\.timeouts\.contentMs: expected a positive number/,
    ],
    [
      { milters: [{ address: "unix:/run/x.sock", actions: ["changeFrom"] }] },
      /^@postern\/milter\.milters\.0\.actions\.0: expected one of addHeaders/,
    ],
    [
      { milters: [{ address: "unix:/run/x.sock", timeout: 5 }] },
      /^@postern\/milter\.milters\.0\.timeout: unknown setting/,
    ],
  ])("%j is refused with one line naming the key", (options, message) => {
    let caught: unknown;
    try {
      milter(options as MilterOptions);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toMatch(message);
    expect((caught as Error).message).not.toContain("\n");
  });
});
