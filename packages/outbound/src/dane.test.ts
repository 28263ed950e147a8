// DANE (RFC 7672) against a real validating resolver: unbound on loopback validates zones signed
// here (ldns-signzone) with their trust anchors, and serves all DNS of these tests (core's resolver
// asks it too). A matching TLSA delivers, a mismatch defers, a bogus TLSA answer defers without a
// connection, DANE-TA matches a CA in the chain, an insecure zone's TLSA is ignored, and REQUIRETLS
// is satisfied by a DANE match (a self-signed certificate no CA would pass).
import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  buildMessage,
  createTestCertificate,
  type FakeDns,
  startFakeDns,
  type TestCertificate,
} from "@postern/testing";
import nodemailer from "nodemailer";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { outboundTls, type TlsOutcome } from "./delivery-hooks.ts";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";
import { startUnbound, type Unbound } from "./test/unbound.ts";

const run = promisify(execFile);
const net = "127.0.16";
let unbound: Unbound;
let unusedDns: FakeDns;
let selfSigned: TestCertificate;
let caChain: { certificate: string; key: string; dir: string; caDer: Buffer };
const sinks: MxSink[] = [];
let harness: OutboundHarness | undefined;
let port: number;

const spkiSha256 = (pem: string) =>
  createHash("sha256")
    .update(new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" }))
    .digest("hex");

/** A CA and a leaf for mx.ta.dane.test it issued; the sink serves leaf + CA (DANE-TA needs the anchor sent). */
async function makeCaChain(dir: string) {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-days",
    "30",
    "-subj",
    "/CN=Postern DANE test CA",
    "-keyout",
    join(dir, "ca.key"),
    "-out",
    join(dir, "ca.crt"),
  ]);
  await run("openssl", [
    "req",
    ...ec,
    "-subj",
    "/CN=mx.ta.dane.test",
    "-keyout",
    join(dir, "leaf.key"),
    "-out",
    join(dir, "leaf.csr"),
  ]);
  await writeFile(join(dir, "leaf.ext"), "subjectAltName=DNS:mx.ta.dane.test\n");
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    join(dir, "leaf.csr"),
    "-CA",
    join(dir, "ca.crt"),
    "-CAkey",
    join(dir, "ca.key"),
    "-CAcreateserial",
    "-days",
    "30",
    "-extfile",
    join(dir, "leaf.ext"),
    "-out",
    join(dir, "leaf.crt"),
  ]);
  const ca = await readFile(join(dir, "ca.crt"), "utf8");
  await writeFile(join(dir, "chain.crt"), (await readFile(join(dir, "leaf.crt"), "utf8")) + ca);
  return { certificate: join(dir, "chain.crt"), key: join(dir, "leaf.key"), dir, caDer: new X509Certificate(ca).raw };
}

beforeAll(async () => {
  selfSigned = await createTestCertificate([
    "mx.dane.test",
    "mx.mismatch.dane.test",
    "mx.bogus.dane.test",
    "mx.plain.test",
  ]);
  caChain = await makeCaChain(selfSigned.dir);
  // Every sink on one port, so one TLSA owner name (_<port>._tcp) per host.
  const first = await startSink({ host: `${net}.2`, tls: selfSigned, requireTlsExtension: true });
  sinks.push(first);
  port = first.port;
  for (const [host, tls] of [
    [`${net}.3`, selfSigned],
    [`${net}.4`, selfSigned],
    [`${net}.5`, caChain],
    [`${net}.6`, selfSigned],
  ] as const) {
    sinks.push(await startSink({ host, port, tls }));
  }
  const ee = spkiSha256(await readFile(selfSigned.certificate, "utf8"));
  const wrong = createHash("sha256").update("not this key").digest("hex");
  const ta = createHash("sha256").update(caChain.caDer).digest("hex");
  unbound = await startUnbound([
    {
      name: "dane.test",
      records: [
        "@ IN MX 10 mx",
        `mx IN A ${net}.2`,
        `_${port}._tcp.mx IN TLSA 3 1 1 ${ee}`,
        "mismatch IN MX 10 mx.mismatch",
        `mx.mismatch IN A ${net}.3`,
        `_${port}._tcp.mx.mismatch IN TLSA 3 1 1 ${wrong}`,
        "bogus IN MX 10 mx.bogus",
        `mx.bogus IN A ${net}.4`,
        `_${port}._tcp.mx.bogus IN TLSA 3 1 1 ${ee}`,
        "ta IN MX 10 mx.ta",
        `mx.ta IN A ${net}.5`,
        `_${port}._tcp.mx.ta IN TLSA 2 0 1 ${ta}`,
        "origin IN MX 10 mx",
      ],
      // The TLSA of mx.bogus now says something its signature does not: the validator answers SERVFAIL.
      tamper: (zone) =>
        zone.replace(
          new RegExp(`(_${port}\\._tcp\\.mx\\.bogus\\.dane\\.test\\.\\s+\\d+\\s+IN\\s+TLSA\\s+3 1 1 )[0-9a-f]{64}`),
          `$1${wrong}`,
        ),
    },
    {
      name: "plain.test",
      signed: false,
      records: ["@ IN MX 10 mx", `mx IN A ${net}.6`, `_${port}._tcp.mx IN TLSA 3 1 1 ${wrong}`],
    },
  ]);
  unusedDns = await startFakeDns({});
});
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
});
afterAll(async () => {
  for (const sink of sinks) await sink.close();
  await unbound?.stop();
  await unusedDns?.close();
  await rm(selfSigned.dir, { recursive: true, force: true });
});

async function startDane(extra: { listenerTls?: boolean } = {}) {
  return startOutbound(
    unusedDns,
    { port, dane: { resolver: unbound.server, timeoutMs: 2_000 }, mtaSts: { enabled: false } },
    {
      config: {
        dns: { servers: [unbound.server] },
        ...(extra.listenerTls
          ? {
              listeners: [
                {
                  address: "127.0.0.1",
                  port: 1,
                  tls: "starttls",
                  certificate: selfSigned.certificate,
                  key: selfSigned.key,
                },
              ],
            }
          : {}),
      },
    },
  );
}

const sinkAt = (host: string) => sinks.find((sink) => sink.host === host)!;

describe("DANE with a validating unbound", () => {
  it("the resolver really validates: a secure TLSA answer has AD, a tampered one is SERVFAIL", async () => {
    const { ValidatingResolver } = await import("./dnssec-resolver.ts");
    const resolver = new ValidatingResolver({ server: unbound.server, timeoutMs: 2_000 });
    expect(await resolver.query(`_${port}._tcp.mx.dane.test`, "TLSA")).toMatchObject({ secure: true });
    expect(await resolver.query("mx.plain.test", "A")).toMatchObject({ secure: false, records: [`${net}.6`] });
    await expect(resolver.query(`_${port}._tcp.mx.bogus.dane.test`, "TLSA")).rejects.toMatchObject({
      code: "SERVFAIL",
    });
  });

  it("delivers over TLS to an MX whose certificate matches its DANE-EE record (self-signed, no CA needed)", async () => {
    harness = await startDane();
    await harness.server.send({
      from: "a@origin.dane.test",
      to: "user@dane.test",
      raw: buildMessage({ subject: "dane ee" }),
    });
    const delivered = await harness.events.wait("delivered");
    expect(delivered.reply.remote).toContain("mx.dane.test");
    expect((await sinkAt(`${net}.2`).next()).secure).toBe(true);
    // The TLS report's view: a DANE session, its policy domain the TLSA base domain (RFC 8460 §3).
    expect(delivered.tls).toEqual([
      expect.objectContaining({
        result: "success",
        policy: {
          type: "tlsa",
          domain: "mx.dane.test",
          strings: [expect.stringMatching(/^3 1 1 [0-9a-f]{64}$/)],
          mxHost: "mx.dane.test",
        },
      }),
    ]);
  });

  it("defers (4.7.5) when the certificate matches no TLSA record", async () => {
    harness = await startDane();
    await harness.server.send({ from: "a@origin.dane.test", to: "user@mismatch.dane.test", raw: buildMessage() });
    const deferred = await harness.events.wait("deferred");
    expect(deferred.reply.status).toBe("4.7.5");
    expect(deferred.reply.text).toMatch(/DANE: mx\.mismatch\.dane\.test .*matches no TLSA record/);
    expect(sinkAt(`${net}.3`).messages).toHaveLength(0);
    expect(deferred.tls).toEqual([
      expect.objectContaining({
        result: "validation-failure",
        reasonCode: "tlsa-mismatch",
        policy: expect.objectContaining({ type: "tlsa", domain: "mx.mismatch.dane.test" }),
      }),
    ]);
  });

  it("defers without connecting when the TLSA answer is bogus", async () => {
    const before = sinkAt(`${net}.4`).connections;
    harness = await startDane();
    const outcomes: TlsOutcome[] = [];
    harness.server.server.events.on(outboundTls, (outcome) => {
      outcomes.push(outcome);
    });
    await harness.server.send({ from: "a@origin.dane.test", to: "user@bogus.dane.test", raw: buildMessage() });
    const deferred = await harness.events.wait("deferred");
    expect(deferred.reply.status).toBe("4.7.5");
    expect(deferred.reply.text).toMatch(
      /DANE: no usable MX host of bogus\.dane\.test: TLSA lookup for mx\.bogus\.dane\.test failed \(SERVFAIL/,
    );
    expect(sinkAt(`${net}.4`).connections).toBe(before);
    expect(outcomes).toEqual([
      expect.objectContaining({
        result: "dnssec-invalid",
        reasonCode: "SERVFAIL",
        mxHost: "mx.bogus.dane.test",
        policy: expect.objectContaining({ type: "tlsa", domain: "mx.bogus.dane.test" }),
      }),
    ]);
  });

  it("delivers with DANE-TA: the chain's CA matches, the leaf names the MX host", async () => {
    harness = await startDane();
    await harness.server.send({ from: "a@origin.dane.test", to: "user@ta.dane.test", raw: buildMessage() });
    await harness.events.wait("delivered");
    expect((await sinkAt(`${net}.5`).next()).secure).toBe(true);
  });

  it("ignores the TLSA records of an insecure (unsigned) zone", async () => {
    harness = await startDane();
    await harness.server.send({ from: "a@origin.dane.test", to: "user@plain.test", raw: buildMessage() });
    await harness.events.wait("delivered");
    expect(await sinkAt(`${net}.6`).next()).toMatchObject({ to: ["user@plain.test"] });
  });

  it("takes a DANE match as the authenticated TLS REQUIRETLS asks for", async () => {
    harness = await startDane({ listenerTls: true });
    const transport = nodemailer.createTransport({
      host: "127.0.0.1",
      port: harness.server.port,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      name: "client.test",
    });
    try {
      await transport.sendMail({
        envelope: { from: "a@origin.dane.test", to: "user@dane.test" },
        raw: buildMessage({ subject: "requiretls via dane" }),
        requireTLSExtensionEnabled: true,
      });
    } finally {
      transport.close();
    }
    await harness.events.wait("delivered");
    expect(await sinkAt(`${net}.2`).next()).toMatchObject({ secure: true, requireTls: true, to: ["user@dane.test"] });
  });
});
