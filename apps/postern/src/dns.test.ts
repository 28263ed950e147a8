// `postern dns records` and `postern dns check` through the real CLI, against @postern/testing's
// fake DNS zone and an HTTPS server on loopback serving the MTA-STS policy.
import { generateKeyPairSync } from "node:crypto";
import { once } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { createTestCertificate, type FakeDns, reverseName, startFakeDns, type Zone } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

afterEach(async () => {
  await killRunningClis();
});
afterAll(async () => {
  await removeTempDirs();
});

const ip = "192.0.2.10";
let dir: string;
let p: string;
let dns: FakeDns;
let https: Server;
let policyUrl: string;
let caFile: string;
let policy = "";

function goodZone(): Zone {
  return {
    "example.test": { MX: ["10 mx.example.test"], TXT: ["v=spf1 mx -all", "google-site-verification=abc"] },
    "mx.example.test": { A: [ip] },
    [reverseName(ip)]: { PTR: ["mx.example.test"] },
    "s1._domainkey.example.test": { TXT: [`v=DKIM1; k=ed25519; p=${p}`] },
    "_dmarc.example.test": { TXT: ["v=DMARC1; p=none; rua=mailto:postmaster@example.test"] },
    "_mta-sts.example.test": { TXT: ["v=STSv1; id=20260101"] },
    "mta-sts.example.test": { A: ["127.0.0.1"] },
    "_smtp._tls.example.test": { TXT: ["v=TLSRPTv1; rua=mailto:postmaster@example.test"] },
  };
}

function setZone(zone: Zone): void {
  for (const [name, entry] of Object.entries(zone)) dns.set(name, entry);
}

beforeAll(async () => {
  dir = await makeTempDir("dns");
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  p = publicKey.export({ format: "der", type: "spki" }).subarray(-32).toString("base64");
  await writeFile(join(dir, "s1.key"), privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
  dns = await startFakeDns({});
  await writeFile(
    join(dir, "postern.yaml"),
    `hostname: mx.example.test
dns:
  servers: ["${dns.servers[0]}"]
  timeoutMs: 2000
plugins:
  - package: "@postern/recipients"
    options: { domains: [example.test] }
  - package: "@postern/dkim"
    options:
      verify: false
      sign: { keys: [{ domain: example.test, selector: s1, keyFile: ./s1.key }] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`,
  );
  const certificate = await createTestCertificate(["mta-sts.example.test"]);
  caFile = certificate.certificate;
  https = createServer(
    { cert: await readFile(certificate.certificate), key: await readFile(certificate.key) },
    (request, response) => {
      if (request.url !== "/.well-known/mta-sts.txt") return response.writeHead(404).end();
      response.writeHead(200, { "content-type": "text/plain" }).end(policy);
    },
  );
  https.listen(0, "127.0.0.1");
  await once(https, "listening");
  const { port } = https.address() as { port: number };
  policyUrl = `https://mta-sts.example.test:${port}/.well-known/mta-sts.txt`;
});

afterAll(async () => {
  https?.close();
  await dns?.close();
});

describe("postern dns records", () => {
  it("prints MX, A, SPF, DKIM from the config's key, DMARC, MTA-STS, TLS-RPT and the PTR to ask for", async () => {
    const result = await runCli(["dns", "records", "--domain", "example.test", "--ip", ip], dir);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const records = result.stdout.split("\n").filter((line) => line !== "" && !line.startsWith(";"));
    expect(records).toEqual([
      "example.test. IN MX 10 mx.example.test.",
      `mx.example.test. IN A ${ip}`,
      'example.test. IN TXT "v=spf1 mx -all"',
      `s1._domainkey.example.test. IN TXT "v=DKIM1; k=ed25519; p=${p}"   ; ./s1.key`,
      '_dmarc.example.test. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.test"',
      expect.stringMatching(/^_mta-sts\.example\.test\. IN TXT "v=STSv1; id=[0-9a-f]{20}"$/),
      '_smtp._tls.example.test. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.test"',
      "10.2.0.192.in-addr.arpa. IN PTR mx.example.test.",
    ]);
    expect(result.stdout).toContain(";   mode: testing\n;   mx: mx.example.test\n;   max_age: 604800\n");
  });

  it("prints the MTA-STS policy file alone with --policy", async () => {
    const result = await runCli(
      ["dns", "records", "--domain", "example.test", "--mta-sts-mode", "enforce", "--policy"],
      dir,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 604800\r\n");
  });

  it("refuses a --domain that is not a domain and a lone --selector, as usage errors", async () => {
    const bad = await runCli(["dns", "records", "--domain", "not a domain"], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^postern dns: --domain: expected the mail domain, e\.g\. --domain example\.com\n/);
    const lone = await runCli(["dns", "records", "--domain", "example.test", "--selector", "s2"], dir);
    expect(lone.code).toBe(2);
    expect(lone.stderr).toMatch(/^postern dns: --dkim-key and --selector go together/);
  });
});

describe("postern dns check", () => {
  const check = () =>
    runCli(["dns", "check", "--domain", "example.test", "--ip", ip, "--mta-sts-url", policyUrl, "--ca", caFile], dir);

  it("passes a zone that publishes everything, and the policy served over HTTPS", async () => {
    policy = (await runCli(["dns", "records", "--domain", "example.test", "--policy"], dir)).stdout;
    setZone(goodZone());
    const result = await check();
    expect(result.stdout.trimEnd().split("\n")).toEqual([
      "ok       MX example.test: 10 mx.example.test",
      `ok       A/AAAA mx.example.test: ${ip}`,
      'ok       SPF example.test: "v=spf1 mx -all"',
      "ok       DKIM s1._domainkey.example.test: matches ./s1.key",
      "ok       DMARC _dmarc.example.test: p=none (monitoring only)",
      "ok       MTA-STS _mta-sts.example.test: id=20260101",
      `ok       MTA-STS policy ${policyUrl}: mode testing, mx mx.example.test, max_age 604800`,
      "ok       TLS-RPT _smtp._tls.example.test: rua=mailto:postmaster@example.test",
      `ok       PTR ${ip}: mx.example.test`,
    ]);
    expect(result.stderr).toBe("postern dns check: 9 ok, 0 warnings, 0 errors\n");
    expect(result.code).toBe(0);
  });

  it("names each record that is missing or wrong, and exits 1", async () => {
    policy = "version: STSv1\r\nmode: enforce\r\nmx: *.elsewhere.test\r\nmax_age: 604800\r\n";
    setZone({
      ...goodZone(),
      "example.test": { MX: ["10 mx.example.test"], TXT: ["v=spf1 mx -all", "v=spf1 ip4:198.51.100.0/24 -all"] },
      "s1._domainkey.example.test": { TXT: ["v=DKIM1; k=ed25519; p=AAAAotherkey"] },
      "_dmarc.example.test": "NXDOMAIN",
      "_smtp._tls.example.test": "SERVFAIL",
      [reverseName(ip)]: { PTR: ["host-10.provider.test"] },
      "host-10.provider.test": { A: ["192.0.2.99"] },
    });
    const result = await check();
    expect(result.code).toBe(1);
    expect(result.stdout.trimEnd().split("\n")).toEqual([
      "ok       MX example.test: 10 mx.example.test",
      `ok       A/AAAA mx.example.test: ${ip}`,
      "error    SPF example.test: 2 SPF records; receivers treat that as a permanent error (RFC 7208 §4.5): merge them into one",
      "error    DKIM s1._domainkey.example.test: publishes another key than ./s1.key; mail signed with it fails DKIM",
      'error    DMARC _dmarc.example.test: none published; publish "v=DMARC1; p=none; rua=mailto:postmaster@example.test"',
      "ok       MTA-STS _mta-sts.example.test: id=20260101",
      `error    MTA-STS policy ${policyUrl}: its mx lines do not cover mx.example.test: senders will refuse to deliver there`,
      "error    TLS-RPT _smtp._tls.example.test: TXT _smtp._tls.example.test: the DNS lookup failed (ESERVFAIL)",
      `error    PTR ${ip}: host-10.provider.test does not resolve back to ${ip} (forward-confirmed reverse DNS fails)`,
    ]);
    expect(result.stderr).toBe("postern dns check: 3 ok, 0 warnings, 6 errors\n");
  });
});
