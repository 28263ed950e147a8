// The dmarcEvaluated observer event: every evaluation, accepted or refused, with the inputs an
// aggregate report needs (client address, envelope, DKIM signatures, SPF entries, disposition).
import type { Plugin } from "@postern/core";
import dkim from "@postern/dkim";
import spf from "@postern/spf";
import { buildMessage, claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixture, zone } from "../test-fixtures/zone.ts";
import dmarc, { type DmarcEvaluatedEvent, dmarcEvaluated } from "./index.ts";

describe("dmarcEvaluated", () => {
  let server: TestServer;
  const seen: DmarcEvaluatedEvent[] = [];
  const observer: Plugin = {
    name: "observer",
    setup(context) {
      context.events.on(dmarcEvaluated, (event) => {
        seen.push(event);
      });
    },
    hooks: {},
  };
  beforeAll(async () => {
    server = await startTestServer({
      plugins: [claimRecipients(), spf(), dkim(), dmarc(), observer, memoryQueue().plugin],
      dns: zone,
    });
  });
  afterAll(() => server.stop());

  it("carries an SPF-aligned pass with the client address and the SPF identity", async () => {
    await server.send({
      from: "boss@reject.example",
      to: "user@localhost",
      raw: buildMessage({ from: "boss@reject.example" }),
    });
    const event = seen.at(-1)!;
    expect(event.transaction.session.remoteAddress).toBe("127.0.0.1");
    expect(event.transaction.mailFrom.address).toBe("boss@reject.example");
    expect(event.result).toMatchObject({
      result: "pass",
      policyDomain: "reject.example",
      record: "v=DMARC1; p=reject; rua=mailto:dmarc@reject.example",
      disposition: { action: "accept", override: undefined },
    });
    expect(event.spf).toContainEqual(
      expect.objectContaining({ result: "pass", properties: { "smtp.mailfrom": "reject.example" } }),
    );
    expect(event.dkim.signatures).toEqual([]);
    expect(event.at).toBeGreaterThan(0);
  });

  it("is emitted for a message the policy refuses, with its DKIM signatures", async () => {
    const before = seen.length;
    await expect(
      server.send({ from: "bounce@evil.example", to: "user@localhost", raw: fixture("rsa-body-tampered.eml") }),
    ).rejects.toMatchObject({ responseCode: 550 });
    expect(seen).toHaveLength(before + 1);
    const event = seen.at(-1)!;
    expect(event.result).toMatchObject({ result: "fail", disposition: { action: "reject" } });
    expect(event.dkim.signatures).toEqual([
      expect.objectContaining({ domain: "signed.example", selector: "py-rsa", result: "fail" }),
    ]);
  });
});
