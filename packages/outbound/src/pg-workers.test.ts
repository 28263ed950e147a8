// Two Postern nodes sharing one PostgreSQL queue split the deliveries and never both deliver one
// recipient: both accept mail into the same schema and both run workers against it.
import { randomBytes } from "node:crypto";
import { buildMessage, type FakeDns, startFakeDns } from "@postern/testing";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.13";
const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `outbound_workers_${randomBytes(4).toString("hex")}`;
let dns: FakeDns;
let sink: MxSink;
const nodes: OutboundHarness[] = [];

beforeAll(async () => {
  dns = await startFakeDns({ "shared.test": { MX: ["10 mx.shared.test"] }, "mx.shared.test": { A: [`${net}.2`] } });
  // A slow MX, so deliveries overlap and both nodes find work waiting.
  sink = await startSink({
    host: `${net}.2`,
    data: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 60)),
  });
});
afterAll(async () => {
  for (const node of nodes) await node.stop();
  await sink.close();
  await dns.close();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

it("splits the queue between two nodes without delivering any recipient twice", { timeout: 60_000 }, async () => {
  for (const name of ["node-a", "node-b"]) {
    nodes.push(
      await startOutbound(dns, {
        port: sink.port,
        queue: { type: "postgres", connectionString: databaseUrl, schema, maxConnections: 4 },
        concurrency: { total: 3, perDomain: 3 },
        connections: { reuse: false },
        worker: { id: name, pollIntervalMs: 50 },
      }),
    );
  }
  const messages = 20;
  for (let i = 0; i < messages; i++) {
    const node = nodes[i % 2]!;
    await node.server.send({
      from: "sender@origin.test",
      to: [`a${i}@shared.test`, `b${i}@shared.test`],
      raw: buildMessage({ subject: `shared ${i}` }),
    });
  }
  const delivered = () => nodes.reduce((sum, node) => sum + node.events.count("delivered"), 0);
  await expect.poll(delivered, { timeout: 45_000 }).toBe(messages * 2);
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(delivered()).toBe(messages * 2);

  const perRecipient = new Map<string, number>();
  for (const message of sink.messages) {
    for (const address of message.to) perRecipient.set(address, (perRecipient.get(address) ?? 0) + 1);
  }
  expect(perRecipient.size).toBe(messages * 2);
  expect([...perRecipient.values()].every((count) => count === 1)).toBe(true);
  // A message's recipients at one domain travel together, in one transaction.
  expect(sink.messages).toHaveLength(messages);
  // Both nodes did part of the work.
  expect(nodes[0]!.events.count("delivered")).toBeGreaterThan(0);
  expect(nodes[1]!.events.count("delivered")).toBeGreaterThan(0);
  expect((await nodes[0]!.plugin.store.stats()).messages).toBe(0);
});
