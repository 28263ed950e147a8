// What per-destination throttles cost @postern/outbound: the same full queue emptied into a local
// sink without a throttle, under a connection limit (in process, and shared through the real Redis
// at $REDIS_URL) and under a messages-per-minute rule high enough never to hold mail back (so the
// figure is the cost of counting: one limiter call per message). Loopback only: a fake DNS server
// names the sink as the MX of sink.bench; the sink is a Postern server that drops what it gets.
//   node --conditions=dev-source tooling/bench/outbound-throttle.ts [messages=1000] [size=4096]
// Each run fills a fresh filesystem spool with single-recipient messages, starts a server with the
// outbound plugin on it, and times until the last is delivered (bounded: 120 s per run).
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { accept, type Plugin } from "@postern/core";
import outbound, { FsQueueStore, type MessageEnvelope, type OutboundOptions } from "@postern/outbound";
import { buildMessage, bulkyText, claimRecipients, startFakeDns, startTestServer } from "@postern/testing";

const total = Number(process.argv[2] ?? 1000);
const size = Number(process.argv[3] ?? 4096);
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const runDeadlineMs = 120_000;
process.env.POSTERN_TEST_LOG = "warn";

const sinkAddress = "127.0.15.3";
let open = 0;
let maxOpen = 0;
const drain: Plugin = {
  name: "bench:sink",
  hooks: {
    async connect() {
      open++;
      maxOpen = Math.max(maxOpen, open);
      return undefined;
    },
    async close() {
      open--;
    },
    async queue(_transaction, message) {
      for await (const _chunk of message.stream());
      return accept();
    },
  },
};
const sink = await startTestServer({
  plugins: [claimRecipients({ route: "sink" }), drain],
  config: { listeners: [{ address: sinkAddress, port: 1, greetingDelayMs: 0 }] },
});
const dns = await startFakeDns({ "sink.bench": { MX: ["10 mx.sink.bench"] }, "mx.sink.bench": { A: [sinkAddress] } });
const raw = buildMessage({ subject: "outbound throttle bench", text: bulkyText(size) });
// A prefix per run; what it leaves in Redis expires by itself (slots after 2 × slotTtlMs, counts after a minute).
const redisPrefix = () => `postern:bench:outbound-throttle:${randomBytes(4).toString("hex")}`;

const variants: { name: string; options: () => Partial<OutboundOptions> }[] = [
  { name: "no throttle", options: () => ({}) },
  {
    name: "connections: 2, in process",
    options: () => ({ throttle: [{ match: { mx: "mx.sink.bench" }, connections: 2 }] }),
  },
  {
    name: "connections: 2, Redis",
    options: () => ({
      throttle: [{ match: { mx: "mx.sink.bench" }, connections: 2 }],
      redis: { url: redisUrl, keyPrefix: redisPrefix() },
    }),
  },
  {
    name: "messagesPerMinute: 1e6, in process",
    options: () => ({ throttle: [{ match: { domain: "sink.bench" }, messagesPerMinute: 1_000_000 }] }),
  },
  {
    name: "messagesPerMinute: 1e6, Redis",
    options: () => ({
      throttle: [{ match: { domain: "sink.bench" }, messagesPerMinute: 1_000_000 }],
      redis: { url: redisUrl, keyPrefix: redisPrefix() },
    }),
  },
];

async function run(extra: Partial<OutboundOptions>): Promise<{ seconds: number; delivered: number; maxOpen: number }> {
  const dir = await mkdtemp(join(tmpdir(), "postern-bench-throttle-"));
  const store = new FsQueueStore({ dir });
  await store.open();
  const now = Date.now();
  for (let i = 0; i < total; i++) {
    const envelope: MessageEnvelope = {
      id: `BENCH${i.toString().padStart(7, "0")}${randomBytes(3).toString("hex")}`,
      from: "bench@origin.bench",
      createdAt: now,
      size: raw.length,
      requireTls: false,
      smtpUtf8: false,
      bodyType: "7bit",
      kind: "relay",
    };
    await store.enqueue(envelope, [{ address: `user${i}@sink.bench` }], raw);
  }
  await store.close();
  let delivered = 0;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  maxOpen = 0;
  const plugin = outbound({
    queue: { type: "fs", dir },
    port: sink.port,
    tls: { level: "none" },
    mtaSts: { enabled: false },
    concurrency: { total: 20, perDomain: 20 },
    ...extra,
    hooks: {
      delivered() {
        if (++delivered === total) finish();
      },
    },
  });
  const started = performance.now();
  const server = await startTestServer({ plugins: [plugin], dns });
  const timer = setTimeout(finish, runDeadlineMs);
  await done;
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  await server.stop();
  await rm(dir, { recursive: true, force: true });
  return { seconds, delivered, maxOpen };
}

const rows: string[][] = [];
for (const variant of variants) {
  const result = await run(variant.options());
  rows.push([
    variant.name,
    String(result.delivered),
    result.seconds.toFixed(2),
    (result.delivered / result.seconds).toFixed(0),
    String(result.maxOpen),
  ]);
  process.stderr.write(`${rows.at(-1)!.join("  ")}\n`);
}

const header = ["throttle", "delivered", "seconds", "msg/s", "most open at the sink"];
const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
const line = (cells: string[]) =>
  cells
    .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
    .join("  ");
process.stdout.write(
  [
    `outbound throttles: ${total} messages of ${raw.length} bytes, filesystem store, plaintext, 20 deliveries at once, connection reuse, loopback sink`,
    `node ${process.version}, ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}`,
    line(header),
    ...rows.map(line),
    "",
  ].join("\n"),
);
await sink.stop();
await dns.close();
