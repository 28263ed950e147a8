// Two Postern nodes sharing one PostgreSQL queue split the deliveries and never both deliver one
// recipient: both accept mail into the same schema and both run workers against it.
import { randomBytes } from "node:crypto";
import { buildMessage, type FakeDns, startFakeDns } from "@postern/testing";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type OutboundHarness, startOutbound } from "./test/harness.ts";
import { PgQueueStore } from "./queue/pg-store.ts";
import type { ClaimOptions } from "./queue/store.ts";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.13";
const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `outbound_workers_${randomBytes(4).toString("hex")}`;
let dns: FakeDns;
let sink: MxSink;
let staggeredSink: MxSink;
const nodes: OutboundHarness[] = [];

beforeAll(async () => {
  dns = await startFakeDns({
    "shared.test": { MX: ["10 mx.shared.test"] },
    "mx.shared.test": { A: [`${net}.2`] },
    "batch.test": { MX: ["10 mx.batch.test"] },
    "mx.batch.test": { A: [`${net}.3`] },
  });
  // A slow MX, so deliveries overlap and both nodes find work waiting.
  sink = await startSink({
    host: `${net}.2`,
    data: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 60)),
  });
  // Deliveries that take 20–120 ms, so they finish one at a time rather than in step.
  let delivery = 0;
  staggeredSink = await startSink({
    host: `${net}.3`,
    data: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 20 + ((delivery++ * 37) % 100))),
  });
});
afterAll(async () => {
  for (const node of nodes) await node.stop();
  await sink.close();
  await staggeredSink.close();
  await dns.close();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.query(`DROP SCHEMA IF EXISTS "${schema}_batch" CASCADE`);
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

it("claims for several free slots at once from PostgreSQL, not one query per finished delivery", {
  timeout: 60_000,
}, async () => {
  const inner = new PgQueueStore({ connectionString: databaseUrl, schema: `${schema}_batch`, maxConnections: 4 });
  let claims = 0;
  // Counts claim() calls; every other member is the store's own (bound: it has private fields).
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === "claim") {
        return (options: ClaimOptions) => {
          claims++;
          return target.claim(options);
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const node = await startOutbound(dns, {
    port: staggeredSink.port,
    queue: { type: "custom", store },
    concurrency: { total: 12, perDomain: 12 },
    connections: { reuse: false },
    worker: { id: "batching", pollIntervalMs: 50 },
  });
  nodes.push(node);
  const messages = 48;
  // Sent at once, so a backlog forms behind the 12 delivery slots.
  await Promise.all(
    Array.from({ length: messages }, (_, i) =>
      node.server.send({ from: "sender@origin.test", to: [`m${i}@batch.test`], raw: buildMessage() }),
    ),
  );
  await expect.poll(() => node.events.count("delivered"), { timeout: 45_000 }).toBe(messages);
  expect(staggeredSink.messages).toHaveLength(messages);
  // Claiming after every finished delivery took 53–54 claims here for 48 messages; waiting for 3
  // free slots (a quarter of 12) while deliveries run takes 26–27.
  expect(claims).toBeLessThan(40);
  expect(claims).toBeGreaterThan(0);
  await inner.close();
});
