// The webhook against a real node:http server: the JSON body, signatures and how each HTTP outcome
// becomes an SMTP reply.
import { createServer } from "node:net";
import { accept, type Plugin } from "@postern/core";
import { buildMessage, claimRecipients, type SendError, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import webhook, { verifyWebhook, type WebhookOptions, type WebhookPayload } from "./index.ts";
import { type Receiver, startReceiver } from "./test-receiver.ts";

const secret = "test-secret-0123456789abcdef";
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Stands in for @postern/spf/dkim/dmarc: prepends the Authentication-Results a real check would. */
const authResults: Plugin = {
  name: "test:auth-results",
  hooks: {
    data(_transaction, message) {
      message.prepend("Authentication-Results", "mx.test;\r\n\tspf=pass smtp.mailfrom=example.org");
      return undefined;
    },
  },
};

async function setup(options: Partial<WebhookOptions> = {}): Promise<{ receiver: Receiver; server: TestServer }> {
  const receiver = await startReceiver({ secret });
  cleanups.push(() => receiver.close());
  const server = await startTestServer({
    plugins: [claimRecipients(), authResults, webhook({ url: receiver.url, secret, ...options })],
  });
  cleanups.push(() => server.stop());
  return { receiver, server };
}

async function refusal(promise: Promise<unknown>): Promise<SendError> {
  const error = await promise.then(
    () => undefined,
    (caught: SendError) => caught,
  );
  expect(error, "the message was accepted").toBeDefined();
  return error!;
}

const withAttachment = Buffer.from(
  [
    "From: Alice Example <alice@example.org>",
    "To: Bob <bob@example.test>, carol@example.test",
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=",
    "Date: Thu, 01 Jan 2026 10:00:00 +0000",
    "Message-ID: <m1@example.org>",
    "Authentication-Results: evil.example; dkim=pass (forged by the sender)",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="b1"',
    "",
    "--b1",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "Hello Bob.",
    "--b1",
    "Content-Type: application/pdf",
    'Content-Disposition: attachment; filename="report.pdf"',
    "Content-Transfer-Encoding: base64",
    "",
    Buffer.from("%PDF-1.4 tiny").toString("base64"),
    "--b1--",
    "",
  ].join("\r\n"),
);

describe("JSON format", () => {
  it("posts the parsed message, envelope, session and Postern's own authentication results, signed", async () => {
    const { receiver, server } = await setup();
    await server.send({ to: ["bob@example.test", "carol@example.test"], raw: withAttachment });
    expect(receiver.requests).toHaveLength(1);
    const request = receiver.requests[0]!;
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.signatureValid).toBe(true);
    const payload = (await receiver.lastJson()) as WebhookPayload;
    expect(payload.envelope).toEqual({
      mailFrom: "sender@example.org",
      recipients: ["bob@example.test", "carol@example.test"],
      route: "local",
    });
    expect(payload.session).toMatchObject({ remoteAddress: "127.0.0.1", helo: "client.test", tls: null });
    // Only the field Postern prepended counts; the one inside the message is the sender's claim.
    // Unfolded per RFC 5322: the CRLF goes, the tab stays.
    expect(payload.authenticationResults).toEqual(["mx.test;\tspf=pass smtp.mailfrom=example.org"]);
    expect(payload.prepended.map((field) => field.name)).toEqual(["Authentication-Results", "Received"]);
    expect(payload.message).toMatchObject({
      subject: "Grüße",
      messageId: "<m1@example.org>",
      date: "2026-01-01T10:00:00.000Z",
      from: [{ name: "Alice Example", address: "alice@example.org" }],
      to: [
        { name: "Bob", address: "bob@example.test" },
        { name: "", address: "carol@example.test" },
      ],
      text: "Hello Bob.",
      html: null,
    });
    expect(payload.message.headers[0]).toEqual({ name: "From", value: "Alice Example <alice@example.org>" });
    expect(payload.message.headers.map((field) => field.name)).toContain("Authentication-Results");
    expect(payload.message.attachments).toEqual([
      expect.objectContaining({
        filename: "report.pdf",
        contentType: "application/pdf",
        size: 13,
        disposition: "attachment",
        content: Buffer.from("%PDF-1.4 tiny").toString("base64"),
      }),
    ]);
  });

  it("leaves attachment content out with attachments: omit", async () => {
    const { receiver, server } = await setup({ attachments: "omit" });
    await server.send({ to: "bob@example.test", raw: withAttachment });
    const payload = (await receiver.lastJson()) as WebhookPayload;
    expect(payload.message.attachments[0]).toMatchObject({ filename: "report.pdf", size: 13 });
    expect(payload.message.attachments[0]!.content).toBeUndefined();
  });
});

describe("verifyWebhook", () => {
  it("accepts the request as sent and refuses tampering, other secrets and old timestamps", async () => {
    const { receiver, server } = await setup({ format: "raw" });
    const raw = buildMessage({ subject: "signed" });
    await server.send({ to: "bob@example.test", raw });
    const request = receiver.requests[0]!;
    const [body] = await receiver.read("bob@example.test");
    const headers = request.headers;
    const now = Number(headers["x-postern-timestamp"]) * 1000;
    const verified = verifyWebhook({ secret, headers, body: body!, now });
    expect(verified).toMatchObject({ ok: true, envelope: { recipients: ["bob@example.test"], route: "local" } });
    // A Fetch Headers object works as well as Node's header record; so does a rotated key list.
    const fetchHeaders = new Headers(headers as Record<string, string>);
    expect(
      verifyWebhook({ secret: ["old-secret-xxxxxxxxxxx", secret], headers: fetchHeaders, body: body!, now }).ok,
    ).toBe(true);

    const tampered = Buffer.from(body!);
    tampered[tampered.length - 3] = tampered[tampered.length - 3]! ^ 1;
    expect(verifyWebhook({ secret, headers, body: tampered, now })).toEqual({ ok: false, reason: "mismatch" });
    expect(verifyWebhook({ secret: "another-secret-0123456", headers, body: body!, now })).toEqual({
      ok: false,
      reason: "mismatch",
    });
    const forgedEnvelope = {
      ...headers,
      "x-postern-envelope": headers["x-postern-envelope"]!.toString().replace("bob", "eve"),
    };
    expect(verifyWebhook({ secret, headers: forgedEnvelope, body: body!, now })).toEqual({
      ok: false,
      reason: "mismatch",
    });
    expect(verifyWebhook({ secret, headers, body: body!, now: now + 301_000 })).toEqual({
      ok: false,
      reason: "expired",
    });
    expect(verifyWebhook({ secret, headers: {}, body: body!, now })).toEqual({ ok: false, reason: "missing-headers" });
  });
});

describe("HTTP outcomes", () => {
  const raw = () => buildMessage({ subject: "outcome" });

  it.each([
    [500, /^451 4\.4\.0 The receiving application answered HTTP 500/],
    [503, /^451 4\.4\.5 /],
    [429, /^451 4\.4\.5 /],
    [408, /^451 4\.4\.1 /],
    [302, /^451 4\.4\.0 /],
  ])("HTTP %i → %s (the sender retries)", async (status, reply) => {
    const { receiver, server } = await setup({ format: "raw" });
    receiver.mode = { kind: "status", status };
    const error = await refusal(server.send({ to: "bob@example.test", raw: raw() }));
    expect(error.response).toMatch(reply);
    expect(await receiver.read("bob@example.test")).toEqual([]);
  });

  it("HTTP 4xx rejects by default, with the configured reply, or defers when configured", async () => {
    const rejecting = await setup({ format: "raw" });
    rejecting.receiver.mode = { kind: "status", status: 422 };
    expect((await refusal(rejecting.server.send({ to: "bob@example.test", raw: raw() }))).response).toMatch(
      /^550 5\.7\.1 Message refused by the receiving application/,
    );

    const custom = await setup({ format: "raw", rejectWith: { status: "5.1.1", text: "No such mailbox here" } });
    custom.receiver.mode = { kind: "status", status: 404 };
    expect((await refusal(custom.server.send({ to: "bob@example.test", raw: raw() }))).response).toMatch(
      /^550 5\.1\.1 No such mailbox here/,
    );

    const deferring = await setup({ format: "raw", clientErrors: "defer" });
    deferring.receiver.mode = { kind: "status", status: 400 };
    expect((await refusal(deferring.server.send({ to: "bob@example.test", raw: raw() }))).response).toMatch(
      /^451 4\.4\.0 The receiving application answered HTTP 400/,
    );
  });

  it("an endpoint that does not answer in time → 451 4.4.1", async () => {
    const { receiver, server } = await setup({ format: "raw", timeoutMs: 300 });
    receiver.mode = { kind: "hang" };
    const error = await refusal(server.send({ to: "bob@example.test", raw: raw() }));
    expect(error.response).toMatch(/^451 4\.4\.1 The receiving application did not answer within 300 ms/);
  });

  it("an endpoint nobody listens on → 451 4.4.1", async () => {
    // A port that was free a moment ago: bind, note it, close.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const server = await startTestServer({
      plugins: [claimRecipients(), webhook({ url: `http://127.0.0.1:${port}/inbound`, format: "raw" })],
    });
    cleanups.push(() => server.stop());
    const error = await refusal(server.send({ to: "bob@example.test", raw: raw() }));
    expect(error.response).toMatch(/^451 4\.4\.1 The receiving application could not be reached \(ECONNREFUSED\)/);
  });

  it("leaves other routes alone", async () => {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const elsewhere: Plugin = { name: "test:elsewhere", hooks: { queue: () => accept() } };
    const server = await startTestServer({
      plugins: [claimRecipients({ route: "relay" }), webhook({ url: receiver.url }), elsewhere],
    });
    cleanups.push(() => server.stop());
    await server.send({ to: "bob@example.test", raw: raw() });
    expect(receiver.requests).toHaveLength(0);
  });
});

describe("options", () => {
  it("reports a bad option in one line naming the key", () => {
    expect(() => webhook({ url: "ftp://example.test/" })).toThrow(
      /^@postern\/webhook\.url: expected an http: or https: URL/,
    );
    expect(() => webhook({ url: "https://example.test/", secret: "short" })).toThrow(
      /^@postern\/webhook\.secret: expected a secret of at least 16 characters/,
    );
    expect(() => webhook({ url: "https://example.test/", rejectWith: { status: "4.1.1" as never } })).toThrow(
      /^@postern\/webhook\.rejectWith\.status: expected a permanent enhanced status/,
    );
  });
});
