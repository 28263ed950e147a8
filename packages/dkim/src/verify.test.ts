// Verification against fixtures signed by dkimpy (test-fixtures/make-fixtures.py), delivered
// over SMTP to a server whose DNS is the fake zone holding the fixtures' key records.
import { readFileSync } from "node:fs";
import { parseHeaderBlock } from "@postern/core";
import { claimRecipients, memoryQueue, startTestServer, type TestServer, type Zone } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import dkim, { type DkimOptions, type DkimResult, dkimResult } from "./index.ts";

const fixtures = new URL("../test-fixtures/", import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, fixtures));
const records = JSON.parse(fixture("dns.json").toString()) as Record<string, string>;
const zone: Zone = Object.fromEntries(Object.entries(records).map(([name, text]) => [name, { TXT: [text] }]));

async function withServer<T>(
  options: DkimOptions,
  dns: Zone,
  run: (send: (name: string) => Promise<Delivered>) => Promise<T>,
) {
  const queue = memoryQueue();
  const server: TestServer = await startTestServer({ plugins: [claimRecipients(), dkim(options), queue.plugin], dns });
  try {
    return await run(async (name) => {
      await server.send({ from: "alice@signed.example", to: "bob@localhost", raw: fixture(name) });
      const stored = queue.messages.at(-1)!;
      const headers = parseHeaderBlock(stored.bytes.subarray(0, stored.bytes.indexOf("\r\n\r\n") + 2));
      return {
        result: stored.transaction.results.get(dkimResult)!,
        authResults: headers.getAll("Authentication-Results"),
      };
    });
  } finally {
    await server.stop();
  }
}

interface Delivered {
  result: DkimResult;
  authResults: string[];
}

describe("@postern/dkim verifies dkimpy's signatures", () => {
  let send: (name: string) => Promise<Delivered>;
  let stop: () => void;
  beforeAll(async () => {
    await new Promise<void>((ready) => {
      void withServer({}, zone, (sender) => {
        send = sender;
        ready();
        return new Promise<void>((resolve) => {
          stop = resolve;
        });
      });
    });
  });
  afterAll(() => stop());

  it("rsa-sha256: pass", async () => {
    const { result, authResults } = await send("rsa.eml");
    expect(result.signatures).toMatchObject([
      { result: "pass", domain: "signed.example", selector: "py-rsa", algorithm: "rsa-sha256", keyBits: 2048 },
    ]);
    expect(authResults).toHaveLength(1);
    expect(authResults[0]).toMatch(
      /^mx\.test;\s+dkim=pass header\.i=@signed\.example header\.s=py-rsa header\.a=rsa-sha256 header\.b=\S+$/,
    );
  });

  it("ed25519-sha256: pass", async () => {
    const { result, authResults } = await send("ed25519.eml");
    expect(result.signatures).toMatchObject([{ result: "pass", selector: "py-ed", algorithm: "ed25519-sha256" }]);
    expect(authResults[0]).toMatch(/dkim=pass .*header\.a=ed25519-sha256/);
  });

  it("both signatures of a dual-signed message", async () => {
    const { result, authResults } = await send("dual.eml");
    expect(result.signatures.map((signature) => [signature.algorithm, signature.result])).toEqual([
      ["rsa-sha256", "pass"],
      ["ed25519-sha256", "pass"],
    ]);
    expect(authResults).toHaveLength(1);
    expect(authResults[0]!.match(/dkim=pass/g)).toHaveLength(2);
  });

  for (const algorithm of ["rsa", "ed25519"]) {
    it(`${algorithm}, body changed after signing: fail (body hash did not verify)`, async () => {
      const { result, authResults } = await send(`${algorithm}-body-tampered.eml`);
      expect(result.signatures).toMatchObject([{ result: "fail", comment: "body hash did not verify" }]);
      expect(authResults[0]).toMatch(/dkim=fail \(body hash did not verify\)/);
    });

    it(`${algorithm}, signed Subject changed after signing: fail (bad signature)`, async () => {
      const { result, authResults } = await send(`${algorithm}-header-tampered.eml`);
      expect(result.signatures).toMatchObject([{ result: "fail", comment: "bad signature" }]);
      expect(authResults[0]).toMatch(/dkim=fail \(bad signature\)/);
    });
  }

  it("rsa-sha1: policy (weak algorithm) by default, RFC 8301", async () => {
    const { result, authResults } = await send("rsa-sha1.eml");
    expect(result.signatures).toMatchObject([{ result: "policy", algorithm: "rsa-sha1" }]);
    expect(authResults[0]).toMatch(/dkim=policy .*policy\.dkim-rules=weak-algorithm/);
  });

  it("l= passes when the signed part is intact, and reports the unsigned bytes after it", async () => {
    const { result } = await send("rsa-length.eml");
    const [signature] = result.signatures;
    expect(signature).toMatchObject({ result: "pass", bodyLengthLimit: 89 });
    expect(signature!.unsignedBodyBytes).toBe("P.S. appended after signing\r\n".length);
  });

  it("an unsigned message: dkim=none", async () => {
    const { result, authResults } = await send("../test-fixtures/unsigned.eml");
    expect(result.signatures).toEqual([]);
    expect(authResults[0]).toMatch(/dkim=none \(message not signed\)/);
  });
});

describe("@postern/dkim verification settings", () => {
  it("rejectRsaSha1: false lets an rsa-sha1 signature pass", async () => {
    await withServer({ verify: { rejectRsaSha1: false } }, zone, async (send) => {
      const { result } = await send("rsa-sha1.eml");
      expect(result.signatures).toMatchObject([{ result: "pass", algorithm: "rsa-sha1" }]);
    });
  });

  it("a key shorter than minKeyBits: policy (weak key)", async () => {
    await withServer({ verify: { minKeyBits: 4096 } }, zone, async (send) => {
      const { result, authResults } = await send("rsa.eml");
      expect(result.signatures).toMatchObject([{ result: "policy" }]);
      expect(authResults[0]).toMatch(/dkim=policy .*weak-key/);
    });
  });

  it("a key lookup that times out: temperror, never pass or fail", async () => {
    await withServer({}, { ...zone, "py-rsa._domainkey.signed.example": "TIMEOUT" }, async (send) => {
      const { result, authResults } = await send("rsa.eml");
      expect(result.signatures).toMatchObject([{ result: "temperror" }]);
      expect(authResults[0]).toMatch(/dkim=temperror/);
    });
  });

  it("a key lookup answered SERVFAIL: temperror", async () => {
    await withServer({}, { ...zone, "py-ed._domainkey.signed.example": "SERVFAIL" }, async (send) => {
      const { result } = await send("ed25519.eml");
      expect(result.signatures).toMatchObject([{ result: "temperror" }]);
    });
  });

  it("rejects a bad option with one line naming it", () => {
    expect(() => dkim({ verify: { minKeyBits: "big" as never } })).toThrow(/@postern\/dkim\.verify/);
    expect(() => dkim({ sign: { keys: [] } })).toThrow(/@postern\/dkim\.sign\.keys/);
  });
});
