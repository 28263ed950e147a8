// @postern/clamav against a real clamd (Debian's clamav-daemon), started here on loopback with a
// one-signature database (EICAR), driven over real SMTP.
import { ConfigError, type Plugin } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  freePort,
  type MemoryQueue,
  memoryQueue,
  type SendError,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import clamav, { type ClamavOptions, type ClamavResult, clamavResult, parseScanReply } from "./index.ts";
import { type Clamd, eicarSignature, eicarTestFile, startClamd } from "./testing/clamd.ts";

let clamd: Clamd;
let server: TestServer | undefined;

beforeAll(async () => {
  clamd = await startClamd();
});
afterAll(async () => {
  await clamd.stop();
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** Reads what clamav recorded, as a later plugin would. */
function resultReader(): { plugin: Plugin; seen: (ClamavResult | undefined)[] } {
  const seen: (ClamavResult | undefined)[] = [];
  return {
    seen,
    plugin: {
      name: "test:reads-clamav",
      hooks: {
        data(transaction) {
          seen.push(transaction.results.get(clamavResult));
          return undefined;
        },
      },
    },
  };
}

async function start(options: ClamavOptions, config: Parameters<typeof startTestServer>[0]["config"] = {}) {
  const queue: MemoryQueue = memoryQueue();
  const reader = resultReader();
  server = await startTestServer({
    plugins: [claimRecipients(), clamav(options), reader.plugin, queue.plugin],
    config,
  });
  return { server, queue, seen: reader.seen };
}

async function refusal(promise: Promise<unknown>): Promise<SendError> {
  const error = await promise.then(
    () => undefined,
    (caught: SendError) => caught,
  );
  if (!error) throw new Error("the message was accepted");
  return error;
}

/** A multipart message with one base64 attachment: clamd has to decode the part to see its bytes. */
function withAttachment(content: string): Buffer {
  const base64 = Buffer.from(content, "latin1")
    .toString("base64")
    .replace(/.{1,76}/g, "$&\r\n");
  return Buffer.from(
    [
      "From: <sender@example.org>",
      "To: <user@localhost>",
      "Subject: Invoice attached",
      "Message-ID: <invoice@example.org>",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "Please find the file attached.",
      "--b1",
      'Content-Type: application/octet-stream; name="invoice.com"',
      "Content-Transfer-Encoding: base64",
      'Content-Disposition: attachment; filename="invoice.com"',
      "",
      `${base64}--b1--`,
      "",
    ].join("\r\n"),
  );
}

/** What the data hook logged at warning level or above. */
function logLines(test: TestServer): string[] {
  return test.logs
    .filter((record) => record.plugin === "@postern/clamav" && record.hook === "data" && record.level >= 40)
    .map((record) => record.msg);
}

describe("@postern/clamav scans with clamd", () => {
  it("refuses EICAR in a base64 attachment with 554 5.7.1 naming the signature, and stores nothing", async () => {
    const { server, queue } = await start({ address: clamd.tcpAddress });
    const error = await refusal(server.send({ to: "user@localhost", raw: withAttachment(eicarTestFile()) }));
    expect(error.responseCode).toBe(554);
    expect(error.response).toBe(`554 5.7.1 Message contains a virus (${eicarSignature})`);
    expect(queue.messages).toHaveLength(0);
  });

  it("passes a clean message and records the clean result for later plugins", async () => {
    const { server, queue, seen } = await start({ address: clamd.tcpAddress });
    await server.send({ to: "user@localhost", raw: withAttachment("just some bytes, nothing to see") });
    expect(queue.messages).toHaveLength(1);
    expect(seen[0]).toMatchObject({ status: "clean" });
  });

  it("talks to clamd over its Unix socket too", async () => {
    const { server, queue } = await start({ address: clamd.unixAddress });
    const error = await refusal(server.send({ to: "user@localhost", raw: withAttachment(eicarTestFile()) }));
    expect(error.responseCode).toBe(554);
    await server.send({ to: "user@localhost", raw: buildMessage({ text: "clean\n" }) });
    expect(queue.messages).toHaveLength(1);
  });

  it("quarantines instead when onVirus is quarantine: accepted, stored under the quarantine route", async () => {
    const { server, queue, seen } = await start({ address: clamd.tcpAddress, onVirus: "quarantine" });
    await server.send({ to: "user@localhost", raw: withAttachment(eicarTestFile()) });
    expect(queue.messages.map((message) => message.route)).toEqual(["quarantine"]);
    expect(queue.messages[0]!.transaction.quarantined?.reason).toBe(`virus found: ${eicarSignature}`);
    expect(seen[0]).toMatchObject({ status: "infected", signature: eicarSignature });
  });
});

describe("messages larger than clamd accepts are never passed unscanned by default", () => {
  const large = () => buildMessage({ text: "x".repeat(70).concat("\n").repeat(3000) }); // about 213 KB

  it("answers 451 4.7.1 for a message over maxScanSize (oversize: defer), with one log line", async () => {
    const { server, queue } = await start({ address: clamd.tcpAddress, maxScanSize: "100KB" });
    const error = await refusal(server.send({ to: "user@localhost", raw: large() }));
    expect(error.response).toBe("451 4.7.1 Message too large to be scanned for viruses, try again later");
    expect(queue.messages).toHaveLength(0);
    expect(logLines(server)).toEqual([expect.stringMatching(/over maxScanSize 102400.*deferred$/)]);
  });

  it("answers 552 5.3.4 with oversize: reject", async () => {
    const { server } = await start({ address: clamd.tcpAddress, maxScanSize: "100KB", oversize: "reject" });
    const error = await refusal(server.send({ to: "user@localhost", raw: large() }));
    expect(error.response).toBe("552 5.3.4 Message too large to be scanned for viruses");
  });

  it("passes it with oversize: accept, logged and recorded as unscanned", async () => {
    const { server, queue, seen } = await start({
      address: clamd.tcpAddress,
      maxScanSize: "100KB",
      oversize: "accept",
    });
    await server.send({ to: "user@localhost", raw: large() });
    expect(queue.messages).toHaveLength(1);
    expect(seen[0]).toMatchObject({ status: "unscanned", reason: "oversize" });
    expect(logLines(server)).toEqual([expect.stringMatching(/accepted unscanned$/)]);
  });

  it("applies the oversize policy when clamd's own StreamMaxLength stops the stream first", async () => {
    const small = await startClamd({ streamMaxLength: "100K" });
    try {
      const { server, queue } = await start({ address: small.tcpAddress, maxScanSize: "10MB" });
      const error = await refusal(server.send({ to: "user@localhost", raw: large() }));
      expect(error.responseCode).toBe(451);
      expect(queue.messages).toHaveLength(0);
    } finally {
      await small.stop();
    }
  });
});

describe("clamd down or slow: the onError policy, 451 4.7.1 by default, one log line with the cause", () => {
  it("defers when nothing listens at clamd's address", async () => {
    const port = await freePort();
    const { server, queue } = await start({ address: `inet:127.0.0.1:${port}` });
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toBe("451 4.7.1 Virus scanner unavailable, try again later");
    expect(queue.messages).toHaveLength(0);
    const lines = server.logs.filter(
      (record) => record.plugin === "@postern/clamav" && record.hook === "data" && record.level >= 40,
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ code: "POSTERN_CLAMAV_UNREACHABLE", reason: "error", policy: "defer" });
    expect(lines[0]!.msg).toMatch(
      /cannot connect to clamd at inet:127\.0\.0\.1:\d+ \(ECONNREFUSED\); message deferred/,
    );
  });

  it("defers when clamd is stopped after the server started", async () => {
    const doomed = await startClamd();
    const { server } = await start({ address: doomed.tcpAddress });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    await doomed.kill();
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.responseCode).toBe(451);
    await doomed.stop();
  });

  it("defers when clamd hangs (stopped with SIGSTOP) past timeouts.scanMs", async () => {
    const hung = await startClamd();
    try {
      const { server } = await start({ address: hung.tcpAddress, timeouts: { connectMs: 1000, scanMs: 1500 } });
      hung.pause();
      const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
      expect(error.response).toBe("451 4.7.1 Virus scanner unavailable, try again later");
      const lines = logLines(server);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/did not answer within 1500 ms; message deferred$/);
    } finally {
      hung.resume();
      await hung.stop();
    }
  });

  it("rejects with onError: reject, and passes (logged, recorded) with onError: accept", async () => {
    const port = await freePort();
    const rejecting = await start({ address: `inet:127.0.0.1:${port}`, onError: "reject" });
    const error = await refusal(rejecting.server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toBe("554 5.7.1 Virus scanner unavailable");
    await server?.stop();
    const accepting = await start({ address: `inet:127.0.0.1:${port}`, onError: "accept" });
    await accepting.server.send({ to: "user@localhost", raw: buildMessage() });
    expect(accepting.queue.messages).toHaveLength(1);
    expect(accepting.seen[0]).toMatchObject({ status: "unscanned", reason: "error" });
    expect(logLines(accepting.server)).toEqual([expect.stringMatching(/ECONNREFUSED\); message accepted unscanned$/)]);
  });
});

describe("clamd's answers", () => {
  it("reads OK, FOUND, the size limit and errors", () => {
    expect(parseScanReply("stream: OK\0")).toEqual({ status: "clean" });
    expect(parseScanReply("stream: Win.Test.EICAR_HDB-1 FOUND\0")).toEqual({
      status: "infected",
      signature: "Win.Test.EICAR_HDB-1",
    });
    expect(parseScanReply("INSTREAM size limit exceeded. ERROR\0")).toEqual({ status: "oversize" });
    expect(() => parseScanReply("stream: Can't allocate memory ERROR\0")).toThrow(/Can't allocate memory ERROR/);
  });
});

describe("options", () => {
  it.each([
    [
      { address: "clamd.example:3310" },
      /^@postern\/clamav\.address: expected "unix:\/path\/to\/clamd\.ctl" or "inet:HOST:PORT"/,
    ],
    [{ oversize: "bounce" }, /^@postern\/clamav\.oversize: /],
    [{ maxScanSize: "lots" }, /^@postern\/clamav\.maxScanSize: expected a size such as/],
    [{ timeouts: { scanMs: -1 } }, /^@postern\/clamav\.timeouts\.scanMs: expected a positive number of milliseconds/],
    [{ onVirus: "drop" }, /^@postern\/clamav\.onVirus: /],
    [{ sockets: "x" }, /^@postern\/clamav\.sockets: unknown setting/],
  ])("%j is refused with one line naming the key", (options, message) => {
    let caught: unknown;
    try {
      clamav(options as ClamavOptions);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toMatch(message);
    expect((caught as Error).message).not.toContain("\n");
  });
});
