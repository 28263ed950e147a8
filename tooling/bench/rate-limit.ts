// What @postern/rate-limit adds to each transaction: the same load against a server without a
// limiter, with the in-memory backend and with the Redis backend, in one run, interleaved in rounds
// so that machine noise hits all three alike. Loopback only, bounded in size and time.
//
//   node --conditions=dev-source tooling/bench/rate-limit.ts [--transactions 200] [--clients 4] [--rounds 8]
//
// Variants: no limiter, a no-op plugin on the same hooks, the memory backend, the Redis backend.
// Two workloads: "reused" sends every transaction on a few long sessions (message, recipient and
// byte limits: MAIL, RCPT, DATA hooks); "new" opens a connection per transaction (adding the
// concurrent-connection slot and the connection rate: connect and close hooks). Redis is the
// server at REDIS_URL (default redis://127.0.0.1:6379); keys go under a unique prefix, deleted after.
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { accept, type Plugin } from "../../packages/core/src/index.ts";
import rateLimit, { type LimitRule } from "../../packages/rate-limit/src/index.ts";
import {
  buildMessage,
  connectSmtp,
  deleteRedisKeys,
  type RawSmtpClient,
  startTestServer,
} from "../../packages/testing/src/index.ts";

const { values } = parseArgs({
  options: {
    transactions: { type: "string", default: "200" },
    clients: { type: "string", default: "4" },
    rounds: { type: "string", default: "8" },
  },
});
const transactions = Math.min(Number(values.transactions), 5000);
const clients = Math.min(Number(values.clients), 32);
const rounds = Math.min(Number(values.rounds), 30);
// The test kit logs through pino at this level; info lines per transaction would only add noise.
process.env.POSTERN_TEST_LOG ??= "warn";
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const keyPrefix = `postern-bench:rate-limit:${randomUUID().slice(0, 8)}`;
const deadline = Date.now() + 10 * 60_000;

// Limits a production MX might set, high enough never to refuse during the run.
const limits: LimitRule[] = [
  { kind: "concurrent", limit: 1000 },
  { kind: "connections", limit: "1000000/1h" },
  { kind: "messages", limit: "1000000/1h" },
  { kind: "messages", key: "senderDomain", limit: "1000000/1h" },
  { kind: "recipients", limit: "1000000/1h" },
  { kind: "recipientsPerMessage", limit: 100 },
  { kind: "bytes", limit: "100GB/1d" },
];

const sink: Plugin = {
  name: "bench:sink",
  hooks: { rcptTo: () => accept({ route: "local" }), queue: () => accept() },
};

// "noop" registers the same hooks as the limiter and does nothing in them: what core's hook calls
// cost by themselves, to tell them apart from the limiter's own work.
const noop: Plugin = {
  name: "bench:noop",
  hooks: {
    connect: { handler: () => undefined, order: "pre" },
    auth: { handler: () => undefined, order: "pre" },
    mailFrom: { handler: () => undefined, order: "pre" },
    rcptTo: { handler: () => undefined, order: "pre" },
    data: { handler: () => undefined, order: "pre" },
    close: { handler: () => undefined },
  },
};

type Variant = "none" | "noop" | "memory" | "redis";
const variants: Variant[] = ["none", "noop", "memory", "redis"];

function pluginsFor(variant: Variant): Plugin[] {
  if (variant === "none") return [sink];
  if (variant === "noop") return [noop, sink];
  const redis = variant === "redis" ? { url: redisUrl, keyPrefix: `${keyPrefix}:${variant}` } : undefined;
  return [rateLimit({ limits, ...(redis ? { redis } : {}) }), sink];
}

const message = buildMessage({ text: `${"x".repeat(76)}\n`.repeat(26) });
const payload = Buffer.concat([message, Buffer.from(".\r\n")]);

async function expectCode(client: RawSmtpClient, line: string | undefined, code: number): Promise<void> {
  if (line !== undefined) client.write(`${line}\r\n`);
  const reply = await client.read(30_000);
  if (reply.code !== code) throw new Error(`${line ?? "reply"}: expected ${code}, got ${reply.code} ${reply.text}`);
}

async function oneTransaction(client: RawSmtpClient, index: number): Promise<void> {
  await expectCode(client, `MAIL FROM:<bench${index % 50}@sender${index % 5}.example>`, 250);
  await expectCode(client, `RCPT TO:<user${index % 20}@localhost>`, 250);
  await expectCode(client, "DATA", 354);
  client.write(payload);
  await expectCode(client, undefined, 250);
}

async function open(port: number): Promise<RawSmtpClient> {
  const client = await connectSmtp(port);
  await expectCode(client, undefined, 220);
  await expectCode(client, "EHLO bench.test", 250);
  return client;
}

/** Runs `count` transactions over `clients` workers; returns the elapsed milliseconds. */
async function run(port: number, workload: "reused" | "new", count: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      let session = workload === "reused" ? await open(port) : undefined;
      while (next < count) {
        if (Date.now() > deadline) throw new Error("benchmark ran past its 10 minute bound");
        const index = next++;
        if (workload === "new") {
          const client = await open(port);
          await oneTransaction(client, index);
          await expectCode(client, "QUIT", 221);
          client.close();
        } else {
          await oneTransaction(session!, index);
        }
      }
      session?.close();
      session = undefined;
    }),
  );
  return performance.now() - started;
}

const quantile = (numbers: number[], q: number) =>
  [...numbers].sort((a, b) => a - b)[Math.min(numbers.length - 1, Math.floor(numbers.length * q))]!;
const median = (numbers: number[]) => quantile(numbers, 0.5);

async function main() {
  const loadBefore = loadavg()[0]!;
  const servers = new Map<Variant, Awaited<ReturnType<typeof startTestServer>>>();
  for (const variant of variants) {
    servers.set(variant, await startTestServer({ plugins: pluginsFor(variant), config: { log: { level: "warn" } } }));
  }
  const samples = new Map<string, number[]>();
  try {
    // Warm-up: JIT, Redis scripts loaded, connections made.
    for (const variant of variants) await run(servers.get(variant)!.port, "reused", Math.min(100, transactions));
    for (let round = 0; round < rounds; round++) {
      for (const workload of ["reused", "new"] as const) {
        // Rotate the order each round so no variant always runs first (or last) in a burst of noise.
        for (const variant of variants.map((_, index) => variants[(index + round) % variants.length]!)) {
          const ms = await run(servers.get(variant)!.port, workload, transactions);
          const key = `${workload}/${variant}`;
          samples.set(key, [...(samples.get(key) ?? []), (ms * 1000) / transactions]);
        }
      }
    }
  } finally {
    for (const server of servers.values()) await server.stop();
    await deleteRedisKeys(keyPrefix, redisUrl);
  }

  console.log(
    `@postern/rate-limit benchmark: ${transactions} transactions x ${rounds} rounds, ${clients} clients, ` +
      `${limits.length} limits, 2 KB messages, Node ${process.version}, Redis ${redisUrl}`,
  );
  console.log(`load average (1 min) before ${loadBefore.toFixed(2)}, after ${loadavg()[0]!.toFixed(2)}`);
  console.log("workload  backend  µs/transaction median (p25–p75)  msg/s   added µs/transaction vs none");
  for (const workload of ["reused", "new"] as const) {
    const base = median(samples.get(`${workload}/none`)!);
    for (const variant of variants) {
      const runs = samples.get(`${workload}/${variant}`)!;
      const perTransaction = median(runs);
      const spread = `(${quantile(runs, 0.25).toFixed(0)}–${quantile(runs, 0.75).toFixed(0)})`;
      const added = variant === "none" ? "-" : `${(perTransaction - base).toFixed(0)}`;
      console.log(
        `${workload.padEnd(9)} ${variant.padEnd(8)} ${perTransaction.toFixed(0).padStart(13)} ${spread.padStart(17)}  ${(1e6 / perTransaction).toFixed(0).padStart(6)}   ${added.padStart(6)}`,
      );
    }
  }
  console.log("µs/transaction is wall time divided by transactions across all clients (1/throughput), so the added");
  console.log("cost is what the limiter takes away from throughput, not the latency one client sees.");
}

await main();
