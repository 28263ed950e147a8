// DMARC over SMTP with spf + dkim + dmarc composed as an operator would, DNS from the fake zone,
// DKIM fixtures signed by dkimpy (packages/dkim/test-fixtures).
import dkim from "@postern/dkim";
import spf from "@postern/spf";
import {
  buildMessage,
  type CapturedMessage,
  claimRecipients,
  type MemoryQueue,
  memoryQueue,
  type SendError,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixture, headersOf, zone } from "../test-fixtures/zone.ts";
import dmarc, { type DmarcOptions, dmarcResult } from "./index.ts";

describe("@postern/dmarc with @postern/spf and @postern/dkim", () => {
  let server: TestServer;
  let queue: MemoryQueue;
  beforeAll(async () => {
    queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), spf(), dkim(), dmarc(), queue.plugin], dns: zone });
  });
  afterAll(() => server.stop());

  async function deliver(envelopeFrom: string, raw: Buffer): Promise<CapturedMessage> {
    const before = queue.messages.length;
    await server.send({ from: envelopeFrom, to: "user@localhost", raw });
    expect(queue.messages).toHaveLength(before + 1);
    return queue.messages.at(-1)!;
  }

  async function refused(envelopeFrom: string, raw: Buffer): Promise<SendError> {
    const before = queue.messages.length;
    const error = (await server
      .send({ from: envelopeFrom, to: "user@localhost", raw })
      .catch((e: unknown) => e)) as SendError;
    expect(queue.messages).toHaveLength(before);
    return error;
  }

  const authResultsOf = (stored: CapturedMessage) => {
    const values = headersOf(stored.bytes).getAll("Authentication-Results");
    expect(values).toHaveLength(1);
    return values[0]!;
  };

  it("DKIM-aligned pass (dkimpy signature), SPF of an unrelated domain: one header with all four methods", async () => {
    const stored = await deliver("bounce@evil.example", fixture("rsa.eml"));
    expect(stored.transaction.results.get(dmarcResult)).toMatchObject({
      result: "pass",
      fromDomain: "signed.example",
      policy: "reject",
      alignment: { dkim: "signed.example", spf: undefined },
      disposition: { action: "accept" },
    });
    const headers = headersOf(stored.bytes);
    expect(headers.fields[0]!.name).toBe("Authentication-Results");
    const value = authResultsOf(stored);
    // spf twice: the HELO identity (RFC 7208 §2.3, checked by @postern/spf for every sender), then MAIL FROM.
    expect(value.split(";").map((part) => part.trim().split(/[ =]/)[0])).toEqual([
      "mx.test",
      "spf",
      "spf",
      "dkim",
      "dmarc",
      "arc",
    ]);
    expect(value).toMatch(/spf=\w+ [^;]*smtp\.helo=client\.test;/);
    expect(value).toMatch(/spf=pass [^;]*smtp\.mailfrom=bounce@evil\.example/);
    expect(value).toMatch(/dkim=pass header\.i=@signed\.example header\.s=py-rsa/);
    expect(value).toMatch(/dmarc=pass \(p=REJECT arc=none\) policy\.dmarc=reject header\.from=signed\.example/);
    expect(value).toMatch(/arc=none/);
  });

  it("SPF-aligned pass for an unsigned message", async () => {
    const stored = await deliver("boss@reject.example", buildMessage({ from: "boss@reject.example" }));
    expect(stored.transaction.results.get(dmarcResult)).toMatchObject({
      result: "pass",
      alignment: { spf: "reject.example" },
    });
    expect(authResultsOf(stored)).toMatch(/dmarc=pass .*header\.from=reject\.example/);
  });

  it("relaxed alignment: From news.reject.example, SPF reject.example (Tree Walk to the org domain)", async () => {
    const stored = await deliver("bounce@reject.example", buildMessage({ from: "news@news.reject.example" }));
    expect(stored.transaction.results.get(dmarcResult)).toMatchObject({
      result: "pass",
      orgDomain: "reject.example",
      alignment: { spf: "reject.example" },
    });
  });

  it("p=reject, From not aligned: 550 5.7.1 at the end of DATA", async () => {
    const error = await refused("attacker@evil.example", buildMessage({ from: "ceo@reject.example" }));
    expect(error.responseCode).toBe(550);
    expect(error.response).toMatch(/^550 5\.7\.1 Rejected by the DMARC policy of reject\.example/);
    expect(
      server.logs.some((line) => line.msg === "refused" && line.hook === "data" && line.plugin === "@postern/dmarc"),
    ).toBe(true);
  });

  it("p=reject: an SPF pass of the HELO name only (EHLO reject.example, another sender) does not align", async () => {
    const before = queue.messages.length;
    const error = (await server
      .send({
        from: "attacker@evil.example",
        to: "user@localhost",
        raw: buildMessage({ from: "ceo@reject.example" }),
        name: "reject.example",
      })
      .catch((e: unknown) => e)) as SendError;
    expect(error.response).toMatch(/^550 5\.7\.1 Rejected by the DMARC policy of reject\.example/);
    expect(queue.messages).toHaveLength(before);
  });

  it("p=reject, dkimpy-signed message whose body was changed: 550 5.7.1", async () => {
    const error = await refused("bounce@evil.example", fixture("rsa-body-tampered.eml"));
    expect(error.response).toMatch(/^550 5\.7\.1 /);
  });

  it("p=reject, dkimpy-signed message whose Subject was changed: 550 5.7.1", async () => {
    const error = await refused("bounce@evil.example", fixture("ed25519-header-tampered.eml"));
    expect(error.response).toMatch(/^550 5\.7\.1 /);
  });

  it("p=quarantine, not aligned: stored with the quarantine header; a forged Authentication-Results is removed", async () => {
    const raw = buildMessage({
      from: "billing@quarantine.example",
      headers: [
        [
          "Authentication-Results",
          "mx.test; spf=pass smtp.mailfrom=quarantine.example; dmarc=pass header.from=quarantine.example",
        ],
      ],
    });
    const stored = await deliver("attacker@evil.example", raw);
    expect(stored.transaction.results.get(dmarcResult)).toMatchObject({
      result: "fail",
      policy: "quarantine",
      disposition: { action: "quarantine" },
    });
    expect(headersOf(stored.bytes).get("X-Postern-Quarantine")).toBe(
      "DMARC policy of quarantine.example (p=quarantine) failed",
    );
    const value = authResultsOf(stored);
    expect(value).toMatch(
      /dmarc=fail \(p=QUARANTINE arc=none\) policy\.dmarc=quarantine header\.from=quarantine\.example/,
    );
    expect(stored.bytes.toString()).not.toContain("dmarc=pass");
  });

  it("p=none, not aligned: stored, dmarc=fail recorded, no quarantine header", async () => {
    const stored = await deliver("attacker@evil.example", buildMessage({ from: "info@none.example" }));
    expect(stored.transaction.results.get(dmarcResult)).toMatchObject({
      result: "fail",
      policy: "none",
      disposition: { action: "accept" },
    });
    expect(authResultsOf(stored)).toMatch(/dmarc=fail .*policy\.dmarc=none/);
    expect(headersOf(stored.bytes).has("X-Postern-Quarantine")).toBe(false);
  });

  it("no DMARC record: dmarc=none", async () => {
    const stored = await deliver("attacker@evil.example", buildMessage({ from: "someone@nodmarc.example" }));
    expect(stored.transaction.results.get(dmarcResult)).toMatchObject({ result: "none" });
    expect(authResultsOf(stored)).toMatch(/dmarc=none/);
  });

  it("the DMARC record's DNS times out: temperror, accepted — never pass or fail", async () => {
    const stored = await deliver("attacker@evil.example", buildMessage({ from: "someone@slow.example" }));
    expect(stored.transaction.results.get(dmarcResult)).toMatchObject({ result: "temperror" });
    expect(authResultsOf(stored)).toMatch(/dmarc=temperror/);
  });

  it("two From domains: no DMARC evaluation (RFC 9989 §5.3.1), reported as none", async () => {
    const stored = await deliver(
      "boss@reject.example",
      buildMessage({ from: "boss@reject.example", headers: [["From", "<ceo@quarantine.example>"]] }),
    );
    expect(stored.transaction.results.get(dmarcResult)).toMatchObject({
      result: "none",
      skipReason: "multiple-from-fields",
    });
  });
});

describe("@postern/dmarc settings", () => {
  async function withServer(
    options: DmarcOptions,
    run: (server: TestServer, queue: MemoryQueue) => Promise<void>,
    withOthers = true,
  ) {
    const queue = memoryQueue();
    const plugins = withOthers
      ? [claimRecipients(), spf(), dkim(), dmarc(options), queue.plugin]
      : [claimRecipients(), dmarc(options), queue.plugin];
    const server = await startTestServer({ plugins, dns: zone });
    try {
      await run(server, queue);
    } finally {
      await server.stop();
    }
  }

  it('reject: "quarantine" with quarantineAs.route files a p=reject failure instead of refusing it', async () => {
    await withServer(
      { reject: "quarantine", quarantineAs: { header: false, route: "quarantine" } },
      async (server, queue) => {
        await server.send({
          from: "attacker@evil.example",
          to: "user@localhost",
          raw: buildMessage({ from: "ceo@reject.example" }),
        });
        const stored = queue.messages.at(-1)!;
        expect(stored.route).toBe("quarantine");
        expect(headersOf(stored.bytes).has("X-Postern-Quarantine")).toBe(false);
        expect(stored.transaction.results.get(dmarcResult)?.disposition).toEqual({
          action: "quarantine",
          override: undefined,
        });
      },
    );
  });

  it('reject: "accept" records the failure and a local_policy override', async () => {
    await withServer({ reject: "accept" }, async (server, queue) => {
      await server.send({
        from: "attacker@evil.example",
        to: "user@localhost",
        raw: buildMessage({ from: "ceo@reject.example" }),
      });
      const stored = queue.messages.at(-1)!;
      expect(stored.transaction.results.get(dmarcResult)?.disposition).toEqual({
        action: "accept",
        override: "local_policy",
      });
      expect(headersOf(stored.bytes).get("Authentication-Results")).toMatch(/dmarc=fail .*\(override local_policy\)/);
    });
  });

  it('temperror: "defer" answers 451 4.7.5 when the DMARC lookup times out', async () => {
    await withServer({ temperror: "defer" }, async (server, queue) => {
      const error = (await server
        .send({ from: "attacker@evil.example", to: "user@localhost", raw: buildMessage({ from: "x@slow.example" }) })
        .catch((e: unknown) => e)) as SendError;
      expect(error.response).toMatch(/^451 4\.7\.5 /);
      expect(queue.messages).toHaveLength(0);
    });
  });

  it("without @postern/spf and @postern/dkim it computes both itself, and still writes one header", async () => {
    await withServer(
      {},
      async (server, queue) => {
        await server.send({ from: "bounce@evil.example", to: "user@localhost", raw: fixture("ed25519.eml") });
        const stored = queue.messages.at(-1)!;
        const values = headersOf(stored.bytes).getAll("Authentication-Results");
        expect(values).toHaveLength(1);
        expect(values[0]).toMatch(/spf=pass.*dkim=pass.*dmarc=pass.*arc=none/s);
        expect(headersOf(stored.bytes).has("Received-SPF")).toBe(false);
      },
      false,
    );
  });

  it("rejects a bad option with one line naming it", () => {
    expect(() => dmarc({ reject: "bounce" as never })).toThrow(/@postern\/dmarc\.reject: /);
    expect(() => dmarc({ arc: { trustedSealers: "lists.example" as never } })).toThrow(
      /@postern\/dmarc\.arc\.trustedSealers/,
    );
  });
});
