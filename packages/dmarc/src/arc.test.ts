// ARC over SMTP: a forwarder seals what it relays, dkimpy (independent) validates the seal, and
// the next hop trusts the chain to override a DMARC failure only when the sealer is trusted.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import dkim, { generateDkimKey } from "@postern/dkim";
import spf from "@postern/spf";
import {
  buildMessage,
  claimRecipients,
  type FakeDns,
  memoryQueue,
  type SendError,
  startFakeDns,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { headersOf, zone } from "../test-fixtures/zone.ts";
import dmarc, { arcResult, arcSealed, type DmarcOptions, dmarcResult } from "./index.ts";

const run = promisify(execFile);
const arcVerify = fileURLToPath(new URL("../test-fixtures/dkimpy-arc-verify.py", import.meta.url));

let directory: string;
let dns: FakeDns;
let forwarder: TestServer;
let sealed: Buffer;
const arcKey = generateDkimKey();

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "postern-arc-"));
  const keyFile = join(directory, "forwarder.example.arc2026.key");
  await writeFile(keyFile, arcKey.privateKeyPem, { mode: 0o600 });
  dns = await startFakeDns({ ...zone, "arc2026._domainkey.forwarder.example": { TXT: [arcKey.record] } });
  const queue = memoryQueue();
  forwarder = await startTestServer({
    hostname: "mx.forwarder.example",
    plugins: [
      claimRecipients({ route: "relay" }),
      spf(),
      dkim(),
      dmarc({ arc: { seal: { domain: "forwarder.example", selector: "arc2026", keyFile } } }),
      queue.plugin,
    ],
    dns,
  });
  // The author's domain publishes p=reject; the message reaches the forwarder straight from it.
  await forwarder.send({
    from: "boss@reject.example",
    to: "team@lists.example",
    raw: buildMessage({ from: "boss@reject.example", to: "team@lists.example", subject: "Forwarded" }),
  });
  const stored = queue.messages.at(-1)!;
  expect(stored.transaction.results.get(arcSealed)).toEqual({ instance: 1, domain: "forwarder.example" });
  sealed = stored.bytes;
});
afterAll(async () => {
  await forwarder?.stop();
  await dns?.close();
  await rm(directory, { recursive: true, force: true });
});

describe("ARC sealing by a forwarder", () => {
  it("adds one ARC set on top, with our Authentication-Results as its AAR", () => {
    const headers = headersOf(sealed);
    expect(headers.fields.slice(0, 3).map((field) => field.name)).toEqual([
      "ARC-Seal",
      "ARC-Message-Signature",
      "ARC-Authentication-Results",
    ]);
    expect(headers.get("ARC-Seal")).toMatch(/i=1; a=rsa-sha256; .*cv=none; d=forwarder\.example; s=arc2026/);
    const aar = headers.get("ARC-Authentication-Results")!;
    expect(aar).toMatch(/^i=1; mx\.forwarder\.example;/);
    expect(aar).toMatch(/spf=pass .*dmarc=pass .*header\.from=reject\.example/s);
    expect(aar.replace(/^i=1; /, "")).toBe(headers.get("Authentication-Results"));
  });

  it("validates with dkimpy", async () => {
    const file = join(directory, "sealed.eml");
    await writeFile(file, sealed);
    await writeFile(
      join(directory, "dns.json"),
      JSON.stringify({ "arc2026._domainkey.forwarder.example": arcKey.record }),
    );
    const { stdout } = await run("/usr/bin/python3", [arcVerify, file, join(directory, "dns.json")]);
    expect(JSON.parse(stdout)).toMatchObject({ cv: "pass" });
  });
});

describe("the next hop", () => {
  async function nextHop(options: DmarcOptions, bytes: Buffer) {
    const queue = memoryQueue();
    const server = await startTestServer({
      plugins: [claimRecipients(), spf(), dkim(), dmarc(options), queue.plugin],
      dns,
    });
    try {
      // The forwarder sends with its own envelope sender, so SPF passes for forwarder.example,
      // which does not align with the author's reject.example: DMARC fails.
      const error = await server
        .send({ from: "team-bounces@forwarder.example", to: "member@localhost", raw: bytes })
        .then(
          () => undefined,
          (e: SendError) => e,
        );
      return { error, stored: queue.messages.at(-1), logs: server.logs };
    } finally {
      await server.stop();
    }
  }

  it("accepts a DMARC failure when the chain passes and the sealer is trusted (override trusted_forwarder)", async () => {
    const { error, stored, logs } = await nextHop({ arc: { trustedSealers: ["forwarder.example"] } }, sealed);
    // If this fails, the server's log lines say which check (ARC, DKIM, DNS) answered what.
    expect(error, JSON.stringify(logs)).toBeUndefined();
    expect(stored!.transaction.results.get(arcResult)).toMatchObject({
      result: "pass",
      instance: 1,
      sealer: "forwarder.example",
    });
    expect(stored!.transaction.results.get(dmarcResult)).toMatchObject({
      result: "fail",
      policy: "reject",
      disposition: { action: "accept", override: "trusted_forwarder" },
    });
    const ours = headersOf(stored!.bytes)
      .getAll("Authentication-Results")
      .filter((value) => value.startsWith("mx.test;"));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/dmarc=fail \(p=REJECT arc=pass\) .*\(override trusted_forwarder forwarder\.example\)/);
    expect(ours[0]).toMatch(/arc=pass \(i=1 spf=pass dkim=none dmarc=pass fromdomain=reject\.example\)/);
  });

  it("rejects it when the sealer is not trusted", async () => {
    const { error } = await nextHop({}, sealed);
    expect(error?.response).toMatch(/^550 5\.7\.1 /);
  });

  it("rejects it when the body changed after sealing (arc=fail), trusted sealer or not", async () => {
    const tampered = Buffer.from(
      sealed.toString("latin1").replace("Hello from the Postern", "Hello from Mallory"),
      "latin1",
    );
    const { error } = await nextHop({ arc: { trustedSealers: ["forwarder.example"] } }, tampered);
    expect(error?.response).toMatch(/^550 5\.7\.1 /);
  });
});
