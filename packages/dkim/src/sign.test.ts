// Signing over SMTP: keys from generateDkimKey() in files, TXT records in the fake zone split as
// keygen prints them, and every stored signature checked by dkimpy (independent) and mailauth.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { accept, type Plugin } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  type MemoryQueue,
  memoryQueue,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { dkimVerify } from "mailauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import dkim, { dkimResult, dkimSigned, generateDkimKey, splitTxtValue } from "./index.ts";

const run = promisify(execFile);
const dkimpyVerify = fileURLToPath(new URL("../test-fixtures/dkimpy-verify.py", import.meta.url));

let directory: string;
const records: Record<string, string> = {};
let keys: { domain: string; selector: string; keyFile: string }[];

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "postern-dkim-sign-"));
  keys = [];
  for (const [selector, algorithm] of [
    ["rsa2026", "rsa"],
    ["ed2026", "ed25519"],
  ] as const) {
    const key = generateDkimKey({ algorithm });
    const keyFile = join(directory, `ours.example.${selector}.key`);
    await writeFile(keyFile, key.privateKeyPem, { mode: 0o600 });
    keys.push({ domain: "ours.example", selector, keyFile });
    records[`${selector}._domainkey.ours.example`] = key.record;
  }
  await writeFile(join(directory, "dns.json"), JSON.stringify(records));
});
afterAll(() => rm(directory, { recursive: true, force: true }));

/** dkimpy's verdict on each signature of `bytes`. */
async function dkimpy(
  bytes: Buffer,
): Promise<{ selector: string; domain: string; algorithm: string; valid: boolean }[]> {
  const file = join(directory, `message-${Date.now()}-${Math.random().toString(36).slice(2)}.eml`);
  await writeFile(file, bytes);
  const { stdout } = await run("/usr/bin/python3", [dkimpyVerify, file, join(directory, "dns.json")]);
  return JSON.parse(stdout);
}

describe("@postern/dkim signs relayed mail", () => {
  let server: TestServer;
  let queue: MemoryQueue;
  beforeAll(async () => {
    queue = memoryQueue();
    // TXT values longer than 255 octets are published as several strings, as keygen prints them.
    const zone = Object.fromEntries(
      Object.entries(records).map(([name, text]) => [name, { TXT: [splitTxtValue(text)] }]),
    );
    server = await startTestServer({
      plugins: [
        claimRecipients({ route: "relay", match: (address) => !address.endsWith("@localhost") }),
        claimRecipients({ route: "local" }),
        dkim({ verify: false, sign: { keys } }),
        queue.plugin,
      ],
      dns: zone,
    });
  });
  afterAll(() => server.stop());

  async function relay(from: string, to = "someone@elsewhere.example") {
    await server.send({ from, to, raw: buildMessage({ from, to, subject: "Signed by Postern", text: "Body \n\n" }) });
    return queue.messages.at(-1)!;
  }

  it("signs with both keys of the From domain (RSA and Ed25519); dkimpy and mailauth verify them", async () => {
    const stored = await relay("news@ours.example");
    const text = stored.bytes.toString();
    expect(text.match(/^DKIM-Signature: /gm)).toHaveLength(2);
    expect(stored.transaction.results.get(dkimSigned)).toEqual({
      domain: "ours.example",
      selectors: ["rsa2026", "ed2026"],
    });

    expect(await dkimpy(stored.bytes)).toEqual(
      expect.arrayContaining([
        { selector: "rsa2026", domain: "ours.example", algorithm: "rsa-sha256", valid: true },
        { selector: "ed2026", domain: "ours.example", algorithm: "ed25519-sha256", valid: true },
      ]),
    );
    const resolver = async (name: string) => {
      const record = records[name];
      if (!record) throw Object.assign(new Error(`no ${name}`), { code: "ENOTFOUND" });
      return [splitTxtValue(record)];
    };
    const verified = await dkimVerify(stored.bytes, { resolver });
    expect(verified.results.map((entry) => [entry.selector, entry.status.result])).toEqual(
      expect.arrayContaining([
        ["rsa2026", "pass"],
        ["ed2026", "pass"],
      ]),
    );
  });

  it("signs mail from a subdomain with the parent domain's keys", async () => {
    const stored = await relay("alerts@eu.ours.example");
    expect(stored.transaction.results.get(dkimSigned)?.domain).toBe("ours.example");
    expect((await dkimpy(stored.bytes)).every((signature) => signature.valid)).toBe(true);
  });

  it("does not sign mail from a domain it has no key for", async () => {
    const stored = await relay("someone@other.example");
    expect(stored.bytes.toString()).not.toMatch(/^DKIM-Signature:/m);
  });

  it("does not sign mail that only goes to local recipients", async () => {
    const stored = await relay("news@ours.example", "user@localhost");
    expect(stored.route).toBe("local");
    expect(stored.bytes.toString()).not.toMatch(/^DKIM-Signature:/m);
  });
});

describe("@postern/dkim and authenticated sessions", () => {
  it("sign.authenticated signs a submission whatever its route, and verification skips it", async () => {
    const queue = memoryQueue();
    const anyPassword: Plugin = { name: "test:any-password", hooks: { auth: () => accept() } };
    const zone = Object.fromEntries(
      Object.entries(records).map(([name, text]) => [name, { TXT: [splitTxtValue(text)] }]),
    );
    const server = await startTestServer({
      plugins: [
        anyPassword,
        claimRecipients({ route: "local" }),
        dkim({ sign: { keys, authenticated: true } }),
        queue.plugin,
      ],
      dns: zone,
      config: { listeners: [{ address: "127.0.0.1", port: 1, auth: "optional", allowInsecureAuth: true }] },
    });
    try {
      const raw = buildMessage({ from: "alice@ours.example", to: "bob@localhost" });
      await server.send({
        from: "alice@ours.example",
        to: "bob@localhost",
        raw,
        auth: { user: "alice", pass: "secret" },
      });
      const stored = queue.messages.at(-1)!;
      expect(stored.route).toBe("local");
      expect(stored.transaction.results.get(dkimSigned)?.selectors).toEqual(["rsa2026", "ed2026"]);
      expect(stored.transaction.results.get(dkimResult)).toBeUndefined();
      expect((await dkimpy(stored.bytes)).map((signature) => signature.valid)).toEqual([true, true]);
      // Without AUTH the same local mail is verified, not signed.
      await server.send({ from: "alice@ours.example", to: "bob@localhost", raw });
      const unauthenticated = queue.messages.at(-1)!;
      expect(unauthenticated.transaction.results.get(dkimSigned)).toBeUndefined();
      expect(unauthenticated.transaction.results.get(dkimResult)?.signatures).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

describe("@postern/dkim signing setup", () => {
  it("refuses to start when a key file cannot be read", async () => {
    const missing = join(directory, "missing.key");
    await expect(
      startTestServer({
        plugins: [dkim({ sign: { keys: [{ domain: "ours.example", selector: "s1", keyFile: missing }] } })],
      }),
    ).rejects.toThrow(/DKIM key s1\._domainkey\.ours\.example .*cannot read the key file/);
  });

  it("refuses a file that is not a private key", async () => {
    const bogus = join(directory, "bogus.key");
    await writeFile(bogus, "not a key");
    await expect(
      startTestServer({
        plugins: [dkim({ sign: { keys: [{ domain: "ours.example", selector: "s1", keyFile: bogus }] } })],
      }),
    ).rejects.toThrow(/DKIM key s1\._domainkey\.ours\.example/);
  });
});
