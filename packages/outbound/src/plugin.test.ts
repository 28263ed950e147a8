// The plugin's contract with core and the app: option errors name the key, the queue hook only
// acknowledges stored mail (fail closed), the signer seam, and the metrics registry.
import { ConfigError } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  type FakeDns,
  type SendError,
  startFakeDns,
  startTestServer,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import outbound from "./index.ts";
import type { QueueStore } from "./queue/store.ts";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.14";
let dns: FakeDns;
let harness: OutboundHarness | undefined;
let sink: MxSink | undefined;

beforeAll(async () => {
  dns = await startFakeDns({ "example.test": { MX: ["10 mx.example.test"] }, "mx.example.test": { A: [`${net}.2`] } });
});
afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  await sink?.close();
  sink = undefined;
});
afterAll(async () => {
  await dns.close();
});

describe("options", () => {
  it("reports a bad option as one line naming the key", () => {
    expect(() => outbound({ port: 0 })).toThrow(ConfigError);
    expect(() => outbound({ port: 0 })).toThrow(/^@postern\/outbound\.port: expected a port number 1–65535 \(got 0\)$/);
    expect(() => outbound({ tls: { level: "always" as never } })).toThrow(/^@postern\/outbound\.tls\.level: /);
    expect(() => outbound({ queue: { type: "postgres", schema: "Bad-Name" } })).toThrow(
      /queue\.schema: expected a lower-case SQL identifier/,
    );
  });
});

describe("queue hook", () => {
  it("answers 451 when the store cannot keep the message, and leaves other routes alone", async () => {
    const failing = { claim: async () => [], enqueue: async () => Promise.reject(new Error("disk full")) };
    const store = new Proxy(failing, {
      get: (target, key) => (key in target ? target[key as keyof typeof target] : async () => undefined),
    }) as unknown as QueueStore;
    const plugin = outbound({ queue: { type: "custom", store }, worker: { enabled: false } });
    const server = await startTestServer({ plugins: [claimRecipients({ route: "relay" }), plugin], dns });
    try {
      const error = (await server.send({ to: "a@example.test", raw: buildMessage() }).catch((e) => e)) as SendError;
      expect(error.responseCode).toBe(451);
      expect(error.response).toBe("451 4.3.0 Message not queued for delivery, try again later");
    } finally {
      await server.stop();
    }
    const local = outbound({ queue: { type: "custom", store }, worker: { enabled: false } });
    const other = await startTestServer({ plugins: [claimRecipients({ route: "local" }), local], dns });
    try {
      // Nobody stores route "local" here: core's default refusal, not outbound's.
      const error = (await other.send({ to: "a@example.test", raw: buildMessage() }).catch((e) => e)) as SendError;
      expect(error.response).toBe("451 4.3.0 Message not stored, try again later");
    } finally {
      await other.stop();
    }
  });

  it("signs before queueing through the signer seam, and refuses the message when signing fails", async () => {
    sink = await startSink({ host: `${net}.2` });
    const seen: string[] = [];
    harness = await startOutbound(dns, {
      port: sink.port,
      signer: (message, envelope) => {
        if (envelope.from === "nosign@origin.test") throw new Error("no key for origin.test");
        seen.push(`${envelope.id} ${envelope.recipients.join(",")} ${message.subarray(0, 9).toString()}`);
        return "DKIM-Signature: v=1; a=ed25519-sha256; d=origin.test; s=test;\r\n\tb=c2lnbmVk";
      },
    });
    const sent = await harness.server.send({ from: "sender@origin.test", to: "a@example.test", raw: buildMessage() });
    const received = await sink.next();
    expect(received.bytes.toString()).toMatch(
      /^DKIM-Signature: v=1; a=ed25519-sha256; d=origin\.test; s=test;\r\n\tb=c2lnbmVk\r\nReceived: /,
    );
    expect(seen).toEqual([`${/queued as (\S+)/.exec(sent.response)![1]} a@example.test Received:`]);
    const error = (await harness.server
      .send({ from: "nosign@origin.test", to: "a@example.test", raw: buildMessage() })
      .catch((e) => e)) as SendError;
    expect(error.responseCode).toBe(451);
    await harness.events.wait("delivered");
    await expect.poll(async () => (await harness!.plugin.store.stats()).messages).toBe(0);
    expect(sink.messages).toHaveLength(1);
  });
});

describe("metrics", () => {
  it("counts queued, delivered, deferred and bounced recipients, per-domain failures and the queue", async () => {
    sink = await startSink({
      host: `${net}.2`,
      rcpt: (address, seen) => {
        if (address.startsWith("gone")) return { code: 550, message: "5.1.1 Gone" };
        if (address.startsWith("busy") && seen === 1) return { code: 450, message: "4.2.1 Busy" };
        return undefined;
      },
    });
    harness = await startOutbound(dns, { port: sink.port });
    await harness.server.send({
      from: "",
      to: ["ok@example.test", "gone@example.test", "busy@example.test"],
      raw: buildMessage(),
    });
    await expect.poll(() => harness!.events.count("delivered"), { timeout: 15_000 }).toBe(2);
    await harness.events.wait("bounced");
    const text = await harness.plugin.metrics.metrics();
    expect(text).toMatch(/^postern_outbound_queued_total 3$/m);
    expect(text).toMatch(/^postern_outbound_delivered_total 2$/m);
    expect(text).toMatch(/^postern_outbound_deferred_total 1$/m);
    expect(text).toMatch(/^postern_outbound_bounced_total 1$/m);
    expect(text).toMatch(/^postern_outbound_domain_failures_total\{domain="example\.test",outcome="bounced"\} 1$/m);
    expect(text).toMatch(/^postern_outbound_domain_failures_total\{domain="example\.test",outcome="deferred"\} 1$/m);
    expect(text).toMatch(/^postern_outbound_queue_messages 0$/m);
    expect(text).toMatch(/^postern_outbound_queue_oldest_age_seconds 0$/m);
    // One delivery for the three recipients, one more for the deferred one.
    expect(text).toMatch(/^postern_outbound_delivery_duration_seconds_count 2$/m);
  });
});
