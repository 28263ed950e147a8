import { trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { reject } from "@postern/core";
import { buildMessage, claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import tracing from "./index.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  trace.disable();
});

const noBob = {
  name: "test:no-bob",
  hooks: {
    rcptTo: (_tx: unknown, rcpt: { address: string }) =>
      rcpt.address.startsWith("bob@") ? reject("5.1.1", "No such user") : undefined,
  },
};

describe("OpenTelemetry spans", () => {
  it("makes a span per transaction with a child per hook call, at the times they ran", async () => {
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    server = await startTestServer({ plugins: [tracing(), noBob, claimRecipients(), memoryQueue().plugin] });
    const sent = await server.send({
      to: ["carol@example.test", "bob@example.test"],
      raw: buildMessage({ to: "carol@example.test" }),
    });
    const queueId = /queued as (\S+)/.exec(sent.response)![1];

    await expect.poll(() => exporter.getFinishedSpans().length).toBeGreaterThan(2);
    const spans = exporter.getFinishedSpans();
    const parent = spans.find((span) => span.name === "smtp transaction")!;
    expect(parent.attributes).toMatchObject({
      "postern.queue_id": queueId,
      "postern.outcome": "queued",
      "smtp.rcpt.accepted": 1,
      "smtp.rcpt.refused": 1,
      "smtp.reply.code": 250,
    });
    const children = spans.filter((span) => span.parentSpanContext?.spanId === parent.spanContext().spanId);
    expect(children.map((span) => span.name)).toEqual([
      "rcptTo test:claim-recipients",
      "rcptTo test:no-bob",
      "queue test:memory-queue",
    ]);
    const refusal = children.find((span) => span.name === "rcptTo test:no-bob")!;
    expect(refusal.attributes).toMatchObject({ "postern.verdict": "reject", "smtp.reply": "550 5.1.1 No such user" });
    for (const child of children) {
      expect(child.spanContext().traceId).toBe(parent.spanContext().traceId);
      const [start, end] = [child.startTime, child.endTime].map(([s, n]) => s * 1e3 + n / 1e6);
      const [parentStart, parentEnd] = [parent.startTime, parent.endTime].map(([s, n]) => s * 1e3 + n / 1e6);
      expect(start).toBeGreaterThanOrEqual(parentStart! - 1);
      expect(end).toBeLessThanOrEqual(parentEnd! + 1);
    }
  });

  it("costs nothing but a no-op span without an SDK", async () => {
    server = await startTestServer({ plugins: [tracing(), claimRecipients(), memoryQueue().plugin] });
    const sent = await server.send({ to: "a@example.test", raw: buildMessage({ to: "a@example.test" }) });
    expect(sent.response).toMatch(/^250 /);
  });
});
