import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @postern/rspamd against a real rspamd (Debian's rspamd), started here on loopback with a minimal
// configuration, driven over real SMTP. rspamd's Lua rules (testing/rspamd.ts) echo what it was
// told and let a message ask for an action or a milter change.

import { accept, type Plugin } from "@postern/core";
import {
  buildMessage,
  type CapturedMessage,
  claimRecipients,
  createTestCertificate,
  type FakeDns,
  freePort,
  type MemoryQueue,
  memoryQueue,
  type SendError,
  startFakeDns,
  startTestServer,
  type TestCertificate,
  type TestServer,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import rspamd, { type RspamdOptions, type RspamdResult, rspamdResult } from "./index.ts";
import { type Rspamd, startRspamd } from "./testing/rspamd.ts";

let dns: FakeDns;
let daemon: Rspamd;
let certificate: TestCertificate;
let server: TestServer | undefined;

beforeAll(async () => {
  dns = await startFakeDns({});
  [daemon, certificate] = await Promise.all([startRspamd({ dnsServer: dns.servers[0]! }), createTestCertificate()]);
}, 90_000);
afterAll(async () => {
  await daemon?.stop();
  await dns?.close();
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const gtube = ["XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-", "UBE-TEST-EMAIL*C.34X"].join("");

/** Reads what rspamd recorded, as a later plugin would. */
function resultReader(): { plugin: Plugin; seen: (RspamdResult | undefined)[] } {
  const seen: (RspamdResult | undefined)[] = [];
  return {
    seen,
    plugin: {
      name: "test:reads-rspamd",
      hooks: {
        data(transaction) {
          seen.push(transaction.results.get(rspamdResult));
          return undefined;
        },
      },
    },
  };
}

/** Accepts every AUTH (the tests are about what rspamd is told, not about passwords). */
const anyUser: Plugin = { name: "test:any-user", hooks: { auth: () => accept() } };

interface Started {
  server: TestServer;
  queue: MemoryQueue;
  seen: (RspamdResult | undefined)[];
}

async function start(
  options: RspamdOptions,
  extra: { claim?: (address: string) => boolean; listeners?: boolean } = {},
): Promise<Started> {
  const queue = memoryQueue();
  const reader = resultReader();
  server = await startTestServer({
    plugins: [
      claimRecipients(extra.claim ? { match: extra.claim } : {}),
      anyUser,
      rspamd({ url: daemon.url, ...options }),
      reader.plugin,
      queue.plugin,
    ],
    config: extra.listeners
      ? {
          listeners: [
            { name: "mx", address: "127.0.0.1", port: 1 },
            {
              name: "submission",
              address: "127.0.0.1",
              port: 1,
              tls: "starttls",
              auth: "required",
              certificate: certificate.certificate,
              key: certificate.key,
            },
          ],
        }
      : {},
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

/** The header block of stored bytes, unfolded, as [name, value] pairs. */
function storedFields(message: CapturedMessage): [string, string][] {
  const text = message.bytes.toString("utf8");
  const head = text.slice(0, text.indexOf("\r\n\r\n")).replace(/\r\n[ \t]+/g, " ");
  return head.split("\r\n").map((line) => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
}

const valuesOf = (message: CapturedMessage, name: string) =>
  storedFields(message)
    .filter(([field]) => field.toLowerCase() === name.toLowerCase())
    .map(([, value]) => value);

/** What the rspamd plugin logged at warning level or above. */
const warnings = (test: TestServer) =>
  test.logs.filter((record) => record.plugin === "@postern/rspamd" && record.level >= 40);

/** POSTERN_ENVELOPE's options as a map: what rspamd was told. */
function envelopeSeen(result: RspamdResult | undefined): Record<string, string> {
  if (result?.status !== "scanned") throw new Error(`not scanned: ${JSON.stringify(result)}`);
  const symbol = result.symbols.find((entry) => entry.name === "POSTERN_ENVELOPE");
  if (!symbol) throw new Error(`no POSTERN_ENVELOPE among ${result.symbols.map((entry) => entry.name).join(", ")}`);
  return Object.fromEntries(symbol.options.map((option) => option.split(/=(.*)/s).slice(0, 2) as [string, string]));
}

describe("@postern/rspamd asks rspamd about every message", () => {
  it("refuses GTUBE with 550 5.7.1 and rspamd's own message, and stores nothing", async () => {
    const { server, queue, seen } = await start({});
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage({ text: gtube }) }));
    expect(error.response).toBe("550 5.7.1 Gtube pattern");
    expect(queue.messages).toHaveLength(0);
    expect(seen).toHaveLength(0); // the refusal ended the data hooks
  });

  it("passes a clean message with the score and symbols in X-Spamd-Result, and records them", async () => {
    const { server, queue, seen } = await start({});
    await server.send({ to: "user@localhost", raw: buildMessage({ subject: "Lunch?", text: "See you at noon." }) });
    const [stored] = queue.messages;
    const [header] = valuesOf(stored!, "X-Spamd-Result");
    expect(header).toMatch(/^default: False \[0\.10 \/ 15\.00\]; POSTERN_ENVELOPE\(0\.10\)\[ip=127\.0\.0\.1,/);
    // Our field is on top, above the Received field core wrote.
    expect(storedFields(stored!)[0]![0]).toBe("X-Spamd-Result");
    expect(seen[0]).toMatchObject({
      status: "scanned",
      action: "no action",
      answer: "accept",
      score: 0.1,
      requiredScore: 15,
      skipped: false,
    });
    expect(seen[0]?.status === "scanned" && seen[0].scanMs).toBeGreaterThanOrEqual(0);
  });

  it("removes a score header the client wrote itself", async () => {
    const { server, queue } = await start({});
    const raw = buildMessage({ headers: { "X-Spamd-Result": "default: False [-100.00 / 15.00]" } });
    await server.send({ to: "user@localhost", raw });
    const values = valuesOf(queue.messages[0]!, "X-Spamd-Result");
    expect(values).toHaveLength(1);
    expect(values[0]).toMatch(/^default: False \[0\.10 /);
  });

  it("tells rspamd the client IP, HELO, sender, every recipient, queue ID, our hostname and the settings id", async () => {
    const { server, queue, seen } = await start({ settingsId: "inbound" });
    await server.send({
      from: "alice@example.org",
      to: ["user@localhost", "other@localhost"],
      name: "client.example.org",
      raw: buildMessage(),
    });
    const told = envelopeSeen(seen[0]);
    expect(told).toMatchObject({
      ip: "127.0.0.1",
      helo: "client.example.org",
      from: "alice@example.org",
      rcpt: "user@localhost other@localhost",
      "queue-id": queue.messages[0]!.queueId,
      user: "nil",
      "mta-name": "mx.test",
      "tls-version": "nil",
      "settings-id": "inbound",
    });
  });

  it("tells rspamd the authenticated user and the TLS version and cipher", async () => {
    const { server, seen } = await start({}, { listeners: true });
    await server.send({
      port: server.ports[1]!,
      auth: { user: "alice", pass: "secret" },
      requireTls: true,
      to: "user@localhost",
      raw: buildMessage(),
    });
    const told = envelopeSeen(seen[0]);
    expect(told.user).toBe("alice");
    expect(told["tls-version"]).toMatch(/^TLSv1\.[23]$/);
    expect(told["tls-cipher"]).toMatch(/^TLS_|^ECDHE/);
  });

  it("reaches rspamd over a Unix socket too", async () => {
    const { server, queue } = await start({ url: daemon.socketUrl });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(valuesOf(queue.messages[0]!, "X-Spamd-Result")).toHaveLength(1);
  });
});

describe("a connection rspamd closes before answering", () => {
  it("is asked once more on a new connection (a worker reloading); a second close is final", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-rspamd-drop-"));
    const socketPath = join(dir, "drop.sock");
    let requests = 0;
    let dropEvery = false;
    const fake = createHttpServer((request, response) => {
      requests++;
      if (dropEvery || requests === 1) {
        request.socket.destroy();
        return;
      }
      request.resume();
      request.on("end", () =>
        response.end(JSON.stringify({ action: "no action", score: 0.5, required_score: 15, symbols: {} })),
      );
    });
    await new Promise<void>((resolve) => fake.listen(socketPath, resolve));
    try {
      const { server, queue } = await start({ url: `unix:${socketPath}` });
      await server.send({ to: "user@localhost", raw: buildMessage() });
      expect(requests).toBe(2);
      expect(queue.messages).toHaveLength(1);
      dropEvery = true;
      requests = 0;
      const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
      expect(error.response).toMatch(/^451 4\.7\.1 /);
      expect(requests).toBe(2);
    } finally {
      await new Promise((resolve) => fake.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("rspamd's actions", () => {
  const send = (server: TestServer, action: string, extra: Record<string, string> = {}) =>
    server.send({
      to: "user@localhost",
      raw: buildMessage({ subject: "Offer", headers: { "X-Test-Action": action, ...extra } }),
    });

  it("soft reject → 451 4.7.1 with rspamd's message", async () => {
    const { server, queue } = await start({});
    const error = await refusal(send(server, "soft reject"));
    expect(error.response).toBe("451 4.7.1 forced by the test: soft reject");
    expect(queue.messages).toHaveLength(0);
  });

  it("greylist → 451 4.7.1", async () => {
    const { server } = await start({});
    const error = await refusal(send(server, "greylist"));
    expect(error.response).toBe("451 4.7.1 forced by the test: greylist");
  });

  it("rewrite subject → the Subject rspamd made", async () => {
    const { server, queue, seen } = await start({});
    await send(server, "rewrite subject");
    expect(valuesOf(queue.messages[0]!, "Subject")).toEqual(["*** SPAM *** Offer"]);
    expect(seen[0]).toMatchObject({ action: "rewrite subject", answer: "rewriteSubject" });
  });

  it("add header → X-Spam: Yes, replacing one the client wrote", async () => {
    const { server, queue } = await start({});
    await send(server, "add header", { "X-Spam": "No" });
    expect(valuesOf(queue.messages[0]!, "X-Spam")).toEqual(["Yes"]);
  });

  it("a configured answer replaces the default: reject becomes the spam header, greylist is let through", async () => {
    const { server, queue, seen } = await start({
      actions: { reject: "addHeader", greylist: "accept" },
      spamHeader: { name: "X-Spam-Flag", value: "YES" },
    });
    await server.send({ to: "user@localhost", raw: buildMessage({ text: gtube }) });
    await send(server, "greylist");
    expect(valuesOf(queue.messages[0]!, "X-Spam-Flag")).toEqual(["YES"]);
    expect(valuesOf(queue.messages[0]!, "X-Spamd-Result")[0]).toMatch(/^default: True \[15\.00 \/ 15\.00\]; /);
    expect(valuesOf(queue.messages[1]!, "X-Spam-Flag")).toEqual([]);
    expect(seen.map((result) => result?.status === "scanned" && result.answer)).toEqual(["addHeader", "accept"]);
  });

  it("reject answered with quarantine stores the message under the quarantine route", async () => {
    const { server, queue } = await start({ actions: { reject: "quarantine" } });
    await server.send({ to: "user@localhost", raw: buildMessage({ text: gtube }) });
    expect(queue.messages[0]!.route).toBe("quarantine");
    expect(queue.messages[0]!.transaction.quarantined?.reason).toBe("rspamd: reject, score 15.00 / 15.00");
  });
});

describe("rspamd's milter block, applied through core's rewriting API", () => {
  const withChange = (change: string, extra: Record<string, string> | [string, string][] = {}) =>
    buildMessage({
      headers: [["X-Test-Milter", change], ...(Array.isArray(extra) ? extra : Object.entries(extra))],
    });

  it("adds, inserts and removes header fields, and the stored bytes carry the changes", async () => {
    const { server, queue } = await start({});
    await server.send({
      to: "user@localhost",
      raw: withChange("headers", [
        ["X-Remove-Me", "one"],
        ["X-Remove-Me", "two"],
        ["X-Remove-Last", "keep"],
        ["X-Remove-Last", "drop"],
      ]),
    });
    const stored = queue.messages[0]!;
    const fields = storedFields(stored);
    // order 0 is the top of the header as rspamd saw it; our score field goes above it afterwards.
    expect(fields.slice(0, 2)).toEqual([
      ["X-Spamd-Result", expect.stringMatching(/^default: False/)],
      ["X-Inserted", "on top"],
    ]);
    expect(valuesOf(stored, "X-Added")).toEqual(["added by rspamd"]);
    expect(valuesOf(stored, "X-Twice")).toEqual(["first", "second"]);
    expect(valuesOf(stored, "X-Remove-Me")).toEqual([]);
    expect(valuesOf(stored, "X-Remove-Last")).toEqual(["keep"]);
    // Fields without an order go at the end of the header section.
    expect(fields.at(-1)![0]).toMatch(/^X-(Added|Twice)$/);
  });

  it("adds and removes recipients", async () => {
    const { server, queue } = await start({});
    await server.send({ to: ["user@localhost", "removed@example.net"], raw: withChange("recipients") });
    expect(queue.messages.flatMap((message) => message.recipients).sort()).toEqual([
      "added@example.net",
      "user@localhost",
    ]);
  });

  it("defers a message when a recipient rspamd adds is refused, and says so in the log", async () => {
    const { server, queue } = await start({}, { claim: (address) => !address.endsWith("@elsewhere.example") });
    const error = await refusal(server.send({ to: "user@localhost", raw: withChange("unknown-recipient") }));
    expect(error.response).toBe("451 4.7.1 Message could not be filtered, try again later");
    expect(queue.messages).toHaveLength(0);
    expect(warnings(server).map((record) => record.msg)).toEqual([
      expect.stringMatching(/^rspamd: the recipient nobody@elsewhere\.example rspamd added was refused \(550 /),
    ]);
  });

  it("changes the envelope sender", async () => {
    const { server, queue } = await start({});
    await server.send({ from: "alice@example.org", to: "user@localhost", raw: withChange("sender") });
    expect(queue.messages[0]!.transaction.mailFrom.address).toBe("bounces@example.net");
  });

  it("reject = discard: the client is told 250 and nothing is stored", async () => {
    const { server, queue } = await start({});
    const sent = await server.send({ to: "user@localhost", raw: withChange("discard") });
    expect(sent.response).toMatch(/^250 /);
    expect(queue.messages).toHaveLength(0);
  });

  it("reject = quarantine: stored under the quarantine route", async () => {
    const { server, queue } = await start({});
    await server.send({ to: "user@localhost", raw: withChange("quarantine") });
    expect(queue.messages[0]!.route).toBe("quarantine");
  });

  it("no_action: the action is only recorded in X-Rspamd-Action and the message accepted", async () => {
    const { server, queue, seen } = await start({});
    await server.send({ to: "user@localhost", raw: withChange("no-action") });
    expect(valuesOf(queue.messages[0]!, "X-Rspamd-Action")).toEqual(["reject"]);
    expect(seen[0]).toMatchObject({ action: "reject", answer: "noAction" });
  });

  it("spam_header: rspamd's value for the spam header", async () => {
    const { server, queue } = await start({});
    await server.send({ to: "user@localhost", raw: withChange("spam-header") });
    expect(valuesOf(queue.messages[0]!, "X-Spam")).toEqual(["spam, says rspamd"]);
  });
});

describe("per-listener and per-session settings", () => {
  it("skips rspamd for authenticated submission and records why", async () => {
    const { server, queue, seen } = await start(
      { rules: [{ when: { authenticated: true }, skip: true }] },
      { listeners: true },
    );
    await server.send({
      port: server.ports[1]!,
      auth: { user: "alice", pass: "secret" },
      to: "user@localhost",
      raw: buildMessage({ text: gtube }),
    });
    expect(valuesOf(queue.messages[0]!, "X-Spamd-Result")).toEqual([]);
    expect(seen[0]).toEqual({ status: "unscanned", reason: "rule", detail: "skipped by rules[0]" });
    // The MX listener is still filtered.
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage({ text: gtube }) }));
    expect(error.responseCode).toBe(550);
  });

  it("relaxes one listener: its own settings id, and a reject only marks the message", async () => {
    const { server, queue, seen } = await start(
      {
        settingsId: "inbound",
        rules: [{ when: { listeners: ["submission"] }, settingsId: "outbound", actions: { reject: "addHeader" } }],
      },
      { listeners: true },
    );
    await server.send({
      port: server.ports[1]!,
      auth: { user: "alice", pass: "secret" },
      to: "user@localhost",
      raw: buildMessage({ text: gtube }),
    });
    expect(valuesOf(queue.messages[0]!, "X-Spam")).toEqual(["Yes"]);
    expect(seen[0]).toMatchObject({ action: "reject", answer: "addHeader", settingsId: "outbound" });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(envelopeSeen(seen[1])["settings-id"]).toBe("inbound");
  });

  it("matches rules by client network", async () => {
    const { server, queue } = await start({ rules: [{ when: { networks: ["127.0.0.0/8"] }, skip: true }] });
    await server.send({ to: "user@localhost", raw: buildMessage({ text: gtube }) });
    expect(queue.messages).toHaveLength(1);
  });
});

describe("an rspamd that is down or slow", () => {
  it("down: 451 4.7.1 by default, and one log line with the cause", async () => {
    const port = await freePort();
    const { server, queue } = await start({ url: `http://127.0.0.1:${port}` });
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toBe("451 4.7.1 Spam filter unavailable, try again later");
    expect(queue.messages).toHaveLength(0);
    const lines = warnings(server);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      code: "POSTERN_RSPAMD_UNREACHABLE",
      reason: "error",
      policy: "defer",
      hook: "data",
      msg: `rspamd: cannot connect to rspamd at http://127.0.0.1:${port} (ECONNREFUSED); message deferred`,
    });
  });

  it('down, with onError "accept": stored unscanned, recorded and logged', async () => {
    const port = await freePort();
    const { server, queue, seen } = await start({ url: `http://127.0.0.1:${port}`, onError: "accept" });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(queue.messages).toHaveLength(1);
    expect(valuesOf(queue.messages[0]!, "X-Spamd-Result")).toEqual([]);
    expect(seen[0]).toMatchObject({ status: "unscanned", reason: "error" });
    expect(warnings(server)[0]?.msg).toMatch(/ECONNREFUSED\); message accepted unscanned$/);
  });

  it('down, with onError "reject": 554 5.7.1', async () => {
    const { server } = await start({ url: "unix:/nonexistent/rspamd.sock", onError: "reject" });
    const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
    expect(error.response).toBe("554 5.7.1 Spam filter unavailable");
    expect(warnings(server)[0]).toMatchObject({ code: "POSTERN_RSPAMD_UNREACHABLE" });
  });

  it("slow (its workers stopped): past timeoutMs the policy answers, not core's hook deadline", async () => {
    const { server, queue } = await start({ timeoutMs: 700 });
    await daemon.pauseWorkers();
    try {
      const error = await refusal(server.send({ to: "user@localhost", raw: buildMessage() }));
      expect(error.response).toBe("451 4.7.1 Spam filter unavailable, try again later");
      expect(queue.messages).toHaveLength(0);
      expect(warnings(server)).toEqual([
        expect.objectContaining({
          code: "POSTERN_RSPAMD_TIMEOUT",
          msg: `rspamd: rspamd at ${daemon.url} did not answer within 700 ms; message deferred`,
        }),
      ]);
    } finally {
      await daemon.resumeWorkers();
    }
    // Once rspamd answers again, so does the plugin.
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(queue.messages).toHaveLength(1);
  });
});

describe("messages over maxScanSize", () => {
  const large = () => buildMessage({ text: "x".repeat(76).concat("\n").repeat(200) });

  it("are accepted unscanned by default, recorded and logged", async () => {
    const { server, queue, seen } = await start({ maxScanSize: "4KB" });
    await server.send({ to: "user@localhost", raw: large() });
    expect(queue.messages).toHaveLength(1);
    expect(seen[0]).toMatchObject({ status: "unscanned", reason: "oversize" });
    expect(warnings(server)[0]?.msg).toMatch(/is over maxScanSize 4096; message accepted unscanned$/);
  });

  it('get 451 4.7.1 with oversize "defer"', async () => {
    const { server } = await start({ maxScanSize: "4KB", oversize: "defer" });
    const error = await refusal(server.send({ to: "user@localhost", raw: large() }));
    expect(error.response).toBe("451 4.7.1 Message too large to be checked for spam, try again later");
  });
});
