// Outbound delivery throughput: how fast @postern/outbound empties a full queue into a local sink,
// with and without connection reuse. Loopback only: a fake DNS server names the sink as the MX of
// sink.bench; the sink is a Postern server (core on smtp-server, no greeting delay) that reads and
// drops every message. Bounded: a fixed number of messages per run, each run stops after 120 s.
//   node --conditions=dev-source tooling/bench/outbound.ts [messages=2000] [size=4096]
// Each run: the spool is filled with `messages` single-recipient messages first, then a server
// with the outbound plugin starts on it; the clock runs from start until the last is delivered.
// BENCH_STORE=postgres uses the PostgreSQL store ($DATABASE_URL, a throw-away schema) instead.
// BENCH_TLS=1 makes the sink offer STARTTLS (self-signed; delivery uses opportunistic TLS), where
// a reused connection also saves the TLS handshake.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { accept, type Plugin } from "@postern/core";
import outbound, { FsQueueStore, type MessageEnvelope, PgQueueStore, type QueueStore } from "@postern/outbound";
import {
  buildMessage,
  bulkyText,
  claimRecipients,
  createTestCertificate,
  startFakeDns,
  startTestServer,
} from "@postern/testing";

const total = Number(process.argv[2] ?? 2000);
const size = Number(process.argv[3] ?? 4096);
const storeKind = process.env.BENCH_STORE === "postgres" ? "postgres" : "fs";
const withTls = process.env.BENCH_TLS === "1";
const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const runs = 2;
const runDeadlineMs = 120_000;
process.env.POSTERN_TEST_LOG = "warn";

const sinkAddress = "127.0.15.2";
let received = 0;
const drain: Plugin = {
  name: "bench:sink",
  hooks: {
    async queue(_transaction, message) {
      for await (const _chunk of message.stream());
      received++;
      return accept();
    },
  },
};
const certificate = withTls ? await createTestCertificate(["mx.sink.bench"]) : undefined;
const sink = await startTestServer({
  plugins: [claimRecipients({ route: "sink" }), drain],
  config: {
    listeners: [
      {
        address: sinkAddress,
        port: 1,
        greetingDelayMs: 0,
        ...(certificate
          ? { tls: "starttls" as const, certificate: certificate.certificate, key: certificate.key }
          : {}),
      },
    ],
  },
});
const dns = await startFakeDns({ "sink.bench": { MX: ["10 mx.sink.bench"] }, "mx.sink.bench": { A: [sinkAddress] } });
const raw = buildMessage({ subject: "outbound bench", text: bulkyText(size) });

async function freshStore(): Promise<{
  store: QueueStore;
  queue: NonNullable<Parameters<typeof outbound>[0]>["queue"];
  cleanup(): Promise<void>;
}> {
  if (storeKind === "postgres") {
    const schema = `bench_outbound_${randomBytes(4).toString("hex")}`;
    return {
      store: new PgQueueStore({ connectionString: databaseUrl, schema }),
      queue: { type: "postgres", connectionString: databaseUrl, schema },
      cleanup: () =>
        new Promise<void>((resolve) => {
          execFile("psql", [databaseUrl, "-qc", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], () => resolve());
        }),
    };
  }
  const dir = await mkdtemp(join(tmpdir(), "postern-bench-outbound-"));
  return {
    store: new FsQueueStore({ dir }),
    queue: { type: "fs", dir },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

interface RunResult {
  seconds: number;
  delivered: number;
  connections: number;
}

async function run(reuse: boolean): Promise<RunResult> {
  const { store, queue, cleanup } = await freshStore();
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

  received = 0;
  let delivered = 0;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const plugin = outbound({
    queue,
    port: sink.port,
    tls: { level: withTls ? "opportunistic" : "none" },
    mtaSts: { enabled: false },
    concurrency: { total: 20, perDomain: 20 },
    connections: { reuse },
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
  const metrics = await plugin.metrics.getSingleMetricAsString("postern_outbound_connections_total");
  const opened = Number(/connections_total\{reused="false"\} (\d+)/.exec(metrics)?.[1] ?? 0);
  await server.stop();
  await cleanup();
  return { seconds, delivered, connections: opened };
}

const rows: string[][] = [];
for (const reuse of [true, false]) {
  for (let i = 0; i < runs; i++) {
    const result = await run(reuse);
    rows.push([
      reuse ? "reuse" : "no reuse",
      String(i + 1),
      String(result.delivered),
      result.seconds.toFixed(2),
      (result.delivered / result.seconds).toFixed(0),
      String(result.connections),
    ]);
    process.stderr.write(`${rows.at(-1)!.join("  ")}\n`);
  }
}

const header = ["connections", "run", "delivered", "seconds", "msg/s", "opened"];
const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
const line = (cells: string[]) => cells.map((cell, column) => cell.padStart(widths[column]!)).join("  ");
process.stdout.write(
  [
    `outbound delivery: ${total} messages of ${raw.length} bytes, store ${storeKind}, ${withTls ? "STARTTLS" : "plaintext"}, 20 deliveries at once, loopback sink (sink received ${received} in the last run)`,
    `node ${process.version}, ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}`,
    line(header),
    ...rows.map(line),
    "",
  ].join("\n"),
);
await sink.stop();
await dns.close();
if (certificate) await rm(certificate.dir, { recursive: true, force: true });
