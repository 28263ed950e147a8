// Transport security of deliveries: opportunistic STARTTLS, TLS required per domain, REQUIRETLS
// (RFC 8689) and MTA-STS (RFC 8461), plus the smarthost and static routes that carry AUTH.
// Sinks listen on 127.0.11.x; one self-signed certificate names every host and is trusted through
// the `tls.ca` option (and, for mailauth's policy fetch, the process's default CA list).
import { readFile } from "node:fs/promises";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { type AddressInfo, createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import type { Plugin } from "@postern/core";
import {
  buildMessage,
  createTestCertificate,
  type FakeDns,
  startFakeDns,
  type TestCertificate,
} from "@postern/testing";
import nodemailer from "nodemailer";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { outboundHooks, outboundTls, type RouteContext, type TlsOutcome } from "./delivery-hooks.ts";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, type SinkOptions, startSink } from "./test/mx-sink.ts";

const net = "127.0.11";
let dns: FakeDns;
let cert: TestCertificate;
let untrusted: TestCertificate;
let ca: string;
let harness: OutboundHarness | undefined;
const sinks: MxSink[] = [];
const https: HttpsServer[] = [];

async function sinksOnOnePort(...specs: SinkOptions[]): Promise<MxSink[]> {
  const started: MxSink[] = [];
  for (const spec of specs) {
    const sink = await startSink({ ...spec, port: started[0]?.port ?? 0 });
    started.push(sink);
    sinks.push(sink);
  }
  return started;
}

/** An MTA-STS policy host: HTTPS on port 443 (RFC 8461 fixes the port) of a loopback address. */
async function policyServer(address: string, policy: string): Promise<void> {
  const server = createHttpsServer(
    { cert: await readFile(cert.certificate), key: await readFile(cert.key) },
    (request, response) => {
      if (request.url !== "/.well-known/mta-sts.txt") {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { "content-type": "text/plain" }).end(policy);
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(443, address, () => resolve());
  });
  https.push(server);
}

/** Sends with REQUIRETLS (RFC 8689) over STARTTLS to the Postern listener. */
async function sendRequireTls(port: number, from: string, to: string, raw: Buffer): Promise<string> {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    name: "client.test",
  });
  try {
    const info = await transport.sendMail({ envelope: { from, to }, raw, requireTLSExtensionEnabled: true });
    return info.response;
  } finally {
    transport.close();
  }
}

beforeAll(async () => {
  cert = await createTestCertificate([
    "mx.origin.test",
    "mx.secure.test",
    "mx.sts.test",
    "mx.testing.test",
    "mta-sts.sts.test",
    "mta-sts.nottls.test",
    "mta-sts.testing.test",
    "mta-sts.stray.test",
    "mx.nottls.test",
    "relay.test",
    "localhost",
  ]);
  untrusted = await createTestCertificate(["mx.untrusted.test"]);
  ca = await readFile(cert.certificate, "utf8");
  // mailauth fetches MTA-STS policies with Node's default trust store; add ours for this process.
  setDefaultCACertificates([...getCACertificates("default"), ca]);
  dns = await startFakeDns({
    "origin.test": { MX: ["10 mx.origin.test"] },
    "mx.origin.test": { A: [`${net}.3`] },
    "plain.test": { MX: ["10 mx.plain.test"] },
    "mx.plain.test": { A: [`${net}.2`] },
    "secure.test": { MX: ["10 mx.secure.test"] },
    "mx.secure.test": { A: [`${net}.4`] },
    "untrusted.test": { MX: ["10 mx.untrusted.test"] },
    "mx.untrusted.test": { A: [`${net}.5`] },
    // MTA-STS, enforce: bad.sts.test answers but is not in the policy.
    "sts.test": { MX: ["10 bad.sts.test", "20 mx.sts.test"] },
    "bad.sts.test": { A: [`${net}.6`] },
    "mx.sts.test": { A: [`${net}.7`] },
    "_mta-sts.sts.test": { TXT: ["v=STSv1; id=20250101"] },
    "mta-sts.sts.test": { A: [`${net}.20`] },
    // MTA-STS, enforce, but the only MX offers no TLS.
    "nottls.test": { MX: ["10 mx.nottls.test"] },
    "mx.nottls.test": { A: [`${net}.8`] },
    "_mta-sts.nottls.test": { TXT: ["v=STSv1; id=1"] },
    "mta-sts.nottls.test": { A: [`${net}.21`] },
    // MTA-STS, testing: the MX is not in the policy and is used anyway.
    "testing.test": { MX: ["10 other.testing.test"] },
    "other.testing.test": { A: [`${net}.9`] },
    "_mta-sts.testing.test": { TXT: ["v=STSv1; id=7"] },
    "mta-sts.testing.test": { A: [`${net}.22`] },
    // MTA-STS, enforce: the policy names none of the MX hosts.
    "stray.test": { MX: ["10 mx1.stray.test", "20 mx2.stray.test"] },
    "mx1.stray.test": { A: [`${net}.14`] },
    "mx2.stray.test": { A: [`${net}.15`] },
    "_mta-sts.stray.test": { TXT: ["v=STSv1; id=3"] },
    "mta-sts.stray.test": { A: [`${net}.23`] },
    "relay.test": { A: [`${net}.10`] },
    "brokentls.test": { MX: ["10 mx.brokentls.test"] },
    "mx.brokentls.test": { A: [`${net}.13`] },
  });
  await policyServer(`${net}.20`, "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n");
  await policyServer(`${net}.21`, "version: STSv1\nmode: enforce\nmx: mx.nottls.test\nmax_age: 86400\n");
  await policyServer(`${net}.22`, "version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 86400\n");
  await policyServer(`${net}.23`, "version: STSv1\nmode: enforce\nmx: mx.stray.test\nmax_age: 86400\n");
});
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  for (const sink of sinks.splice(0)) await sink.close();
});
afterAll(async () => {
  for (const server of https) await new Promise((resolve) => server.close(resolve));
  await dns.close();
});

describe("TLS on delivery", () => {
  it("uses STARTTLS when offered, whatever the certificate (opportunistic)", async () => {
    const [mx] = await sinksOnOnePort({ host: `${net}.5`, tls: untrusted });
    harness = await startOutbound(dns, { port: mx!.port });
    await harness.server.send({ from: "sender@origin.test", to: "a@untrusted.test", raw: buildMessage() });
    await harness.events.wait("delivered");
    expect((await mx!.next()).secure).toBe(true);
  });

  it("requires a verified certificate where the domain's policy says so", async () => {
    const [untrustedMx, secureMx] = await sinksOnOnePort(
      { host: `${net}.5`, tls: untrusted },
      { host: `${net}.4`, tls: cert },
    );
    harness = await startOutbound(dns, {
      port: untrustedMx!.port,
      tls: { ca, domains: { "untrusted.test": "verify", "secure.test": "verify" } },
    });
    await harness.server.send({ from: "sender@origin.test", to: "a@untrusted.test", raw: buildMessage() });
    const deferred = await harness.events.wait("deferred");
    expect(deferred.reply.status).toBe("4.7.10");
    expect(deferred.reply.text).toMatch(/TLS with mx\.untrusted\.test .* failed/);
    expect(untrustedMx!.messages).toHaveLength(0);
    await harness.server.send({ from: "sender@origin.test", to: "b@secure.test", raw: buildMessage() });
    await harness.events.wait("delivered");
    expect((await secureMx!.next()).secure).toBe(true);
  });

  it("bounces a REQUIRETLS message (5.7.30) when the MX offers no TLS, reporting back with REQUIRETLS", async () => {
    const [plain, origin] = await sinksOnOnePort(
      { host: `${net}.2` },
      { host: `${net}.3`, tls: cert, requireTlsExtension: true },
    );
    harness = await startOutbound(
      dns,
      { port: plain!.port, tls: { ca } },
      {
        config: {
          listeners: [{ address: "127.0.0.1", port: 1, tls: "starttls", certificate: cert.certificate, key: cert.key }],
        },
      },
    );
    const raw = buildMessage({ subject: "for your eyes only", text: "The secret body.\n" });
    await sendRequireTls(harness.server.port, "sender@origin.test", "a@plain.test", raw);
    const bounced = await harness.events.wait("bounced");
    expect(bounced.message.requireTls).toBe(true);
    expect(bounced.reply.status).toBe("5.7.30");
    expect(plain!.messages).toHaveLength(0);
    // The report travels like the message did: verified TLS, REQUIRETLS, and headers only.
    const report = await origin!.next();
    expect(report).toMatchObject({ from: "", to: ["sender@origin.test"], secure: true, requireTls: true });
    const text = report.bytes.toString();
    expect(text).toMatch(/^Status: 5\.7\.30\r$/m);
    expect(text).toMatch(/^Content-Type: text\/rfc822-headers\r$/m);
    expect(text).toContain("Subject: for your eyes only");
    expect(text).not.toContain("The secret body.");
  });

  it("delivers a REQUIRETLS message over verified TLS to an MX that offers REQUIRETLS", async () => {
    const [origin] = await sinksOnOnePort({ host: `${net}.3`, tls: cert, requireTlsExtension: true });
    harness = await startOutbound(
      dns,
      { port: origin!.port, tls: { ca } },
      {
        config: {
          listeners: [{ address: "127.0.0.1", port: 1, tls: "starttls", certificate: cert.certificate, key: cert.key }],
        },
      },
    );
    await sendRequireTls(harness.server.port, "someone@plain.test", "b@origin.test", buildMessage());
    await harness.events.wait("delivered");
    expect(await origin!.next()).toMatchObject({ secure: true, requireTls: true, to: ["b@origin.test"] });
  });
});

/**
 * An MX whose STARTTLS is broken: it says "220 go ahead" and then answers the TLS handshake with
 * garbage. In plaintext it takes the message. (smtp-server can't be made to fail a handshake.)
 */
async function brokenTlsMx(host: string): Promise<{ server: TcpServer; port: number; received: string[] }> {
  const received: string[] = [];
  const server = createTcpServer((socket) => {
    let buffer = "";
    let inData = false;
    socket.on("error", () => undefined);
    socket.write("220 broken.tls ESMTP\r\n");
    socket.on("data", (chunk) => {
      buffer += chunk.toString("latin1");
      for (;;) {
        if (inData) {
          const end = buffer.indexOf("\r\n.\r\n");
          if (end === -1) return;
          received.push(buffer.slice(0, end));
          buffer = buffer.slice(end + 5);
          inData = false;
          socket.write("250 2.0.0 Ok\r\n");
          continue;
        }
        const eol = buffer.indexOf("\r\n");
        if (eol === -1) return;
        const line = buffer.slice(0, eol).toUpperCase();
        buffer = buffer.slice(eol + 2);
        if (line.startsWith("EHLO")) socket.write("250-broken.tls\r\n250 STARTTLS\r\n");
        else if (line === "STARTTLS") {
          socket.write("220 2.0.0 Go ahead\r\n");
          socket.end("this is not a TLS server hello\r\n");
          return;
        } else if (line === "DATA") {
          inData = true;
          socket.write("354 Go on\r\n");
        } else if (line === "QUIT") socket.end("221 Bye\r\n");
        else socket.write("250 2.0.0 Ok\r\n");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port, received };
}

describe("TLS fallback", () => {
  it("opportunistic TLS whose handshake fails is retried in plaintext on the same host", async () => {
    const broken = await brokenTlsMx(`${net}.13`);
    try {
      harness = await startOutbound(dns, { port: broken.port });
      await harness.server.send({
        from: "sender@origin.test",
        to: "a@brokentls.test",
        raw: buildMessage({ subject: "fallback" }),
      });
      const delivered = await harness.events.wait("delivered");
      expect(delivered.attempts).toBe(1);
      expect(broken.received).toHaveLength(1);
      expect(broken.received[0]).toContain("Subject: fallback");
      expect(harness.server.logs.some((line) => line.msg === "TLS failed, retrying in plaintext")).toBe(true);
    } finally {
      await harness?.stop();
      harness = undefined;
      await new Promise((resolve) => broken.server.close(resolve));
    }
  });
});

/** Every TLS outcome outbound puts on the observer channel from now on. */
function observeTls(of: OutboundHarness): TlsOutcome[] {
  const outcomes: TlsOutcome[] = [];
  of.server.server.events.on(outboundTls, (outcome) => {
    outcomes.push(outcome);
  });
  return outcomes;
}

const stsPolicy = (mx: string) => ["version: STSv1", "mode: enforce", `mx: ${mx}`, "max_age: 86400"];

describe("MTA-STS", () => {
  it("enforce: only MX hosts in the policy, over verified TLS", async () => {
    const [bad, good] = await sinksOnOnePort({ host: `${net}.6`, tls: cert }, { host: `${net}.7`, tls: cert });
    harness = await startOutbound(dns, { port: bad!.port, tls: { ca } });
    const outcomes = observeTls(harness);
    await harness.server.send({ from: "sender@origin.test", to: "a@sts.test", raw: buildMessage() });
    const delivered = await harness.events.wait("delivered");
    expect(delivered.reply.remote).toMatch(/^mx\.sts\.test /);
    expect((await good!.next()).secure).toBe(true);
    expect(bad!.messages).toHaveLength(0);
    expect(bad!.connections).toBe(0);
    // The host the policy rules out is a reported failure (RFC 8460 validation-failure), with no IP:
    // nothing connected to it. The delivery event lists the connection made, only.
    expect(outcomes).toEqual([
      {
        policy: { type: "sts", domain: "sts.test", strings: stsPolicy("mx.sts.test") },
        result: "validation-failure",
        recipientDomain: "sts.test",
        mxHost: "bad.sts.test",
        reasonCode: "mx-not-in-policy",
        detail: expect.stringMatching(/bad\.sts\.test is not an MX host the policy of sts\.test names/),
        queueId: delivered.message.id,
        at: expect.any(Number),
      },
      expect.objectContaining({
        result: "success",
        policy: { type: "sts", domain: "sts.test", strings: stsPolicy("mx.sts.test"), mxHost: "mx.sts.test" },
        mxHost: "mx.sts.test",
        receivingIp: `${net}.7`,
      }),
    ]);
    expect(delivered.tls?.map((outcome) => outcome.result)).toEqual(["success"]);
    // The policy went into the queue store too, for restarts and other nodes.
    expect(await harness.plugin.store.loadCached("mta-sts:sts.test")).toMatchObject({
      id: "20250101",
      mode: "enforce",
      mx: ["mx.sts.test"],
    });
  });

  it("enforce: defers when the policy names no MX host, and reports each one", async () => {
    const [mx1, mx2] = await sinksOnOnePort({ host: `${net}.14`, tls: cert }, { host: `${net}.15`, tls: cert });
    harness = await startOutbound(dns, { port: mx1!.port, tls: { ca } });
    const outcomes = observeTls(harness);
    await harness.server.send({ from: "sender@origin.test", to: "a@stray.test", raw: buildMessage() });
    const deferred = await harness.events.wait("deferred");
    expect(deferred.reply).toMatchObject({ status: "4.7.5" });
    expect(deferred.reply.text).toMatch(/no MX host of stray\.test is allowed by its MTA-STS policy/);
    expect(mx1!.connections + mx2!.connections).toBe(0);
    expect(
      outcomes.map((outcome) => [outcome.result, outcome.mxHost, outcome.reasonCode, outcome.receivingIp]),
    ).toEqual([
      ["validation-failure", "mx1.stray.test", "mx-not-in-policy", undefined],
      ["validation-failure", "mx2.stray.test", "mx-not-in-policy", undefined],
    ]);
    expect(outcomes[0]!.policy).toEqual({ type: "sts", domain: "stray.test", strings: stsPolicy("mx.stray.test") });
  });

  it("enforce: defers rather than deliver without TLS", async () => {
    const [mx] = await sinksOnOnePort({ host: `${net}.8` });
    harness = await startOutbound(dns, { port: mx!.port, tls: { ca } });
    await harness.server.send({ from: "sender@origin.test", to: "a@nottls.test", raw: buildMessage() });
    const deferred = await harness.events.wait("deferred");
    expect(deferred.reply.status).toMatch(/^4\.7\./);
    expect(mx!.messages).toHaveLength(0);
  });

  it("testing: reports but delivers to an MX outside the policy", async () => {
    const [mx] = await sinksOnOnePort({ host: `${net}.9` });
    harness = await startOutbound(dns, { port: mx!.port, tls: { ca } });
    await harness.server.send({ from: "sender@origin.test", to: "a@testing.test", raw: buildMessage() });
    await harness.events.wait("delivered");
    expect(mx!.messages).toHaveLength(1);
    expect(harness.server.logs.some((line) => /MTA-STS policy \(testing\)/.test(line.msg))).toBe(true);
  });
});

describe("smarthost, static routes and the route hook", () => {
  it("relays everything through a smarthost with STARTTLS and AUTH, without MX lookups", async () => {
    const [relay] = await sinksOnOnePort({ host: `${net}.10`, tls: cert, auth: { user: "postern", pass: "s3cret" } });
    harness = await startOutbound(dns, {
      port: 25,
      tls: { ca },
      smarthost: { host: "relay.test", port: relay!.port, auth: { user: "postern", pass: "s3cret" } },
    });
    await harness.server.send({ from: "sender@origin.test", to: "x@nowhere.invalid", raw: buildMessage() });
    const delivered = await harness.events.wait("delivered");
    expect(delivered.reply.remote).toMatch(/^relay\.test /);
    expect(await relay!.next()).toMatchObject({ user: "postern", secure: true, to: ["x@nowhere.invalid"] });
    expect(dns.queries.get("MX nowhere.invalid")).toBeUndefined();
  });

  it("sends a domain to its static route, and a route hook's decision wins over both", async () => {
    const [routed, hooked] = await sinksOnOnePort({ host: `${net}.11` }, { host: `${net}.12` });
    const router: Plugin = {
      name: "test:router",
      handles: [
        outboundHooks.handlers({
          route: (context: RouteContext) =>
            context.domain === "hooked.test" ? { type: "relay", host: `${net}.12`, port: hooked!.port } : undefined,
        }),
      ],
    };
    harness = await startOutbound(
      dns,
      { port: 25, routes: { "routed.test": { host: `${net}.11`, port: routed!.port } } },
      { plugins: [router] },
    );
    await harness.server.send({
      from: "sender@origin.test",
      to: ["a@routed.test", "b@hooked.test"],
      raw: buildMessage(),
    });
    await expect.poll(() => harness!.events.count("delivered"), { timeout: 15_000 }).toBe(2);
    expect((await routed!.next()).to).toEqual(["a@routed.test"]);
    expect((await hooked!.next()).to).toEqual(["b@hooked.test"]);
  });
});
