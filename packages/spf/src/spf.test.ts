import { type HeaderList, parseHeaderBlock } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  type MemoryQueue,
  memoryQueue,
  type SendError,
  startTestServer,
  type TestServer,
  type Zone,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import spf, { type SpfOptions, type SpfResult, spfHeloResult, spfResult } from "./index.ts";

// The test kit's client connects from 127.0.0.1 and says EHLO client.test.
const lookups = (count: number, last: string) =>
  Object.fromEntries(
    Array.from({ length: count }, (_, index) => [
      `l${index + 1}.example`,
      { A: [index + 1 === count ? last : `192.0.2.${index + 1}`] },
    ]),
  );

const zone: Zone = {
  "pass.example": { TXT: ["v=spf1 ip4:127.0.0.1 -all"] },
  "fail.example": { TXT: ["v=spf1 ip4:192.0.2.1 -all exp=explain.fail.example"] },
  "explain.fail.example": { TXT: ["%{i} is not one of our servers"] },
  "softfail.example": { TXT: ["v=spf1 ip4:192.0.2.1 ~all"] },
  "neutral.example": { TXT: ["v=spf1 ?all"] },
  "none.example": { A: ["192.0.2.80"], TXT: ["some other record"] },
  "permerror.example": { TXT: ["v=spf1 ip4:127.0.0.1 -all", "v=spf1 -all"] },
  // Ten DNS-querying mechanisms are allowed, the eleventh is a permerror (RFC 7208 §4.6.4).
  ...lookups(11, "127.0.0.1"),
  "ten-lookups.example": {
    TXT: [`v=spf1 ${Array.from({ length: 10 }, (_, i) => `a:l${i + 2}.example`).join(" ")} -all`],
  },
  "eleven-lookups.example": {
    TXT: [`v=spf1 ${Array.from({ length: 11 }, (_, i) => `a:l${i + 1}.example`).join(" ")} -all`],
  },
  // Two lookups without an answer are allowed, the third is a permerror.
  "two-void.example": { TXT: ["v=spf1 a:void1.example a:void2.example ip4:127.0.0.1 -all"] },
  "three-void.example": { TXT: ["v=spf1 a:void1.example a:void2.example a:void3.example ip4:127.0.0.1 -all"] },
  "timeout.example": "TIMEOUT",
  "servfail.example": "SERVFAIL",
  "include-timeout.example": { TXT: ["v=spf1 include:timeout.example ip4:127.0.0.1 -all"] },
  "client.test": { A: ["127.0.0.1"], TXT: ["v=spf1 a -all"] },
  "forged-helo.example": { TXT: ["v=spf1 ip4:192.0.2.9 -all"] },
};

function headersOf(bytes: Buffer): HeaderList {
  const end = bytes.indexOf("\r\n\r\n");
  return parseHeaderBlock(bytes.subarray(0, end + 2));
}

describe("@postern/spf over SMTP", () => {
  let server: TestServer;
  let queue: MemoryQueue;
  beforeAll(async () => {
    queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), spf(), queue.plugin], dns: zone });
  });
  afterAll(() => server.stop());

  async function deliver(
    from: string,
    raw = buildMessage({ subject: from }),
  ): Promise<{ result: SpfResult; headers: HeaderList }> {
    await server.send({ from, to: "user@localhost", raw });
    const stored = queue.messages.at(-1)!;
    return { result: stored.transaction.results.get(spfResult)!, headers: headersOf(stored.bytes) };
  }

  const cases: [string, SpfResult["result"], RegExp?][] = [
    ["pass.example", "pass"],
    ["fail.example", "fail"],
    ["softfail.example", "softfail"],
    ["neutral.example", "neutral"],
    ["none.example", "none"],
    ["nxdomain.example", "none"],
    ["permerror.example", "permerror"],
    ["ten-lookups.example", "pass"],
    ["eleven-lookups.example", "permerror", /Too many DNS requests/],
    ["two-void.example", "pass"],
    ["three-void.example", "permerror", /void/i],
    ["timeout.example", "temperror"],
    ["servfail.example", "temperror"],
    ["include-timeout.example", "temperror"],
  ];
  for (const [domain, expected, comment] of cases) {
    it(`${domain}: ${expected}, recorded in Received-SPF and Authentication-Results`, async () => {
      const { result, headers } = await deliver(`sender@${domain}`);
      expect(result.result).toBe(expected);
      expect(result.identity).toBe("mailfrom");
      if (comment) expect(result.comment).toMatch(comment);
      expect(headers.fields[0]!.name).toBe("Authentication-Results");
      const authResults = headers.getAll("Authentication-Results");
      expect(authResults).toHaveLength(1);
      expect(authResults[0]).toMatch(
        new RegExp(`;\\s+spf=${expected} [^;]*smtp\\.mailfrom=sender@${domain.replace(/\./g, "\\.")}`),
      );
      expect(headers.get("Received-SPF")).toMatch(new RegExp(`^${expected} .*client-ip=127\\.0\\.0\\.1;`));
    });
  }

  it("counts the lookups against the limit", async () => {
    const { result } = await deliver("sender@ten-lookups.example");
    expect(result.lookups).toMatchObject({ count: 10, limit: 10 });
  });

  it("keeps the domain's explanation for a fail", async () => {
    const { result } = await deliver("sender@fail.example");
    expect(result.explanation).toBe("127.0.0.1 is not one of our servers");
  });

  it("checks the HELO identity for the null sender", async () => {
    const client = await server.connect();
    try {
      await client.read();
      expect((await client.command("EHLO client.test")).code).toBe(250);
      expect((await client.command("MAIL FROM:<>")).code).toBe(250);
      expect((await client.command("RCPT TO:<user@localhost>")).code).toBe(250);
      expect((await client.command("DATA")).code).toBe(354);
      const reply = await client.command(`${buildMessage({ subject: "bounce" }).toString()}.`);
      expect(reply.code).toBe(250);
    } finally {
      client.close();
    }
    const stored = queue.messages.at(-1)!;
    const result = stored.transaction.results.get(spfResult)!;
    expect(result).toMatchObject({ result: "pass", identity: "helo", domain: "client.test" });
    expect(headersOf(stored.bytes).get("Authentication-Results")).toMatch(/spf=pass .*smtp\.helo=client\.test/);
  });

  it("checks the HELO identity for every sender too, reported as smtp.helo beside smtp.mailfrom", async () => {
    await server.send({ from: "sender@fail.example", to: "user@localhost", raw: buildMessage(), name: "client.test" });
    const stored = queue.messages.at(-1)!;
    expect(stored.transaction.results.get(spfHeloResult)).toMatchObject({
      result: "pass",
      identity: "helo",
      domain: "client.test",
    });
    expect(stored.transaction.results.get(spfResult)).toMatchObject({ result: "fail", identity: "mailfrom" });
    const headers = headersOf(stored.bytes);
    const [authResults] = headers.getAll("Authentication-Results");
    expect(authResults).toMatch(
      /^mx\.test;\s+spf=pass [^;]*smtp\.helo=client\.test;\s+spf=fail [^;]*smtp\.mailfrom=sender@fail\.example$/,
    );
    expect(authResults).not.toMatch(/smtp\.mailfrom=postmaster@/);
    // One Received-SPF per identity, MAIL FROM's first.
    const received = headers.getAll("Received-SPF");
    expect(received).toHaveLength(2);
    expect(received[0]).toMatch(/^fail .*envelope-from="?sender@fail\.example/);
    expect(received[1]).toMatch(/^pass .*identity=helo/);
  });

  it("checks no HELO that is an address literal or not a domain name", async () => {
    for (const name of ["[127.0.0.1]", "localhost"]) {
      await server.send({ from: "sender@pass.example", to: "user@localhost", raw: buildMessage(), name });
      const stored = queue.messages.at(-1)!;
      expect(stored.transaction.results.get(spfHeloResult)).toBeUndefined();
      expect(headersOf(stored.bytes).getAll("Received-SPF")).toHaveLength(1);
    }
  });

  it("removes an incoming Authentication-Results that claims our authserv-id, keeps others", async () => {
    const raw = buildMessage({
      subject: "spoof",
      headers: [
        ["Authentication-Results", "mx.test; spf=pass smtp.mailfrom=bank.example; dkim=pass header.d=bank.example"],
        ["Authentication-Results", '(forged) "MX.TEST."; dmarc=pass'],
        ["Authentication-Results", "relay.example.net; spf=fail smtp.mailfrom=fail.example"],
      ],
    });
    const { headers } = await deliver("sender@fail.example", raw);
    const values = headers.getAll("Authentication-Results");
    expect(values).toHaveLength(2);
    expect(values[0]).toMatch(/^mx\.test;.*;\s+spf=fail /);
    expect(values[1]).toBe("relay.example.net; spf=fail smtp.mailfrom=fail.example");
  });
});

describe("@postern/spf policy", () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  async function refusal(options: SpfOptions, from: string): Promise<SendError> {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), spf(options), queue.plugin], dns: zone });
    const error = (await server
      .send({ from, to: "user@localhost", raw: buildMessage() })
      .catch((e: unknown) => e)) as SendError;
    expect(queue.messages).toHaveLength(0);
    return error;
  }

  it('fail: "reject" answers 550 5.7.23 at MAIL FROM, with the explanation', async () => {
    const error = await refusal({ fail: "reject" }, "sender@fail.example");
    expect(error.responseCode).toBe(550);
    expect(error.command).toBe("MAIL FROM");
    expect(error.response).toMatch(/^550 5\.7\.23 SPF fail for fail\.example: 127\.0\.0\.1 is not one of our servers/);
  });

  it('helo.fail: "reject" refuses a forged HELO at MAIL FROM with 550 5.7.23, whatever the sender', async () => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [claimRecipients(), spf({ helo: { fail: "reject" } }), queue.plugin],
      dns: zone,
    });
    const error = (await server
      .send({ from: "sender@pass.example", to: "user@localhost", raw: buildMessage(), name: "forged-helo.example" })
      .catch((e: unknown) => e)) as SendError;
    expect(error.command).toBe("MAIL FROM");
    expect(error.response).toMatch(/^550 5\.7\.23 SPF fail for HELO forged-helo\.example/);
    // The same HELO with helo.check off is only MAIL FROM's business.
    await server.stop();
    server = await startTestServer({
      plugins: [claimRecipients(), spf({ helo: { check: false, fail: "reject" } }), queue.plugin],
      dns: zone,
    });
    await server.send({
      from: "sender@pass.example",
      to: "user@localhost",
      raw: buildMessage(),
      name: "forged-helo.example",
    });
    expect(queue.messages).toHaveLength(1);
  });

  it('temperror: "defer" answers 451 4.7.24 when DNS times out', async () => {
    const error = await refusal({ temperror: "defer" }, "sender@timeout.example");
    expect(error.responseCode).toBe(451);
    expect(error.response).toMatch(/^451 4\.7\.24 /);
  });

  it('permerror: "reject" answers 550 5.7.24', async () => {
    const error = await refusal({ permerror: "reject" }, "sender@eleven-lookups.example");
    expect(error.response).toMatch(/^550 5\.7\.24 /);
  });

  it("rejects a bad option with one line naming it", () => {
    expect(() => spf({ fail: "bounce" as never })).toThrow(/@postern\/spf\.fail: /);
    expect(() => spf({ maxLookup: 3 } as never)).toThrow(/@postern\/spf/);
    expect(() => spf({ helo: { fail: "drop" } } as never)).toThrow(/@postern\/spf\.helo\.fail: /);
  });
});
