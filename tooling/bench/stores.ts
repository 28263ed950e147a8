// Storage benchmark: messages/second of each store behind the same pipeline (claim recipients →
// store), in one run, on the same machine, with the same client. Loopback only: an in-process
// Postern server, nodemailer as the client, and the real backends of this machine — PostgreSQL
// (DATABASE_URL), a private Dovecot started for the run (LMTP), a node:http endpoint (webhook).
// Bounded in count and time; stops by itself and removes what it created.
//   node --conditions=dev-source tooling/bench/stores.ts [messages=1000] [connections=10] [bytes=10000]
// Two rounds (stores interleaved, best of two counts: the machine is shared), after a warm-up of
// 50 messages per store; each run stops after 120 s. BENCH_STORES=<label prefixes, comma-separated>
// runs only those stores; BENCH_MAILDIR_BEFORE=<an earlier store-maildir's index.ts> adds it as a
// row (before/after in one run). The LMTP rows: pooled sessions (the default) and one connection
// per message (`connections: { maxMessages: 1 }`, what the plugin did before it pooled).
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { accept, type Plugin } from "@postern/core";
import lmtp from "@postern/lmtp";
import maildir from "@postern/store-maildir";
import storePostgres from "@postern/store-postgres";
import { buildMessage, bulkyText, claimRecipients, startTestServer } from "@postern/testing";
import webhook from "@postern/webhook";
import nodemailer from "nodemailer";
import { startDovecot } from "../../packages/lmtp/src/test-dovecot.ts";
import { startReceiver } from "../../packages/webhook/src/test-receiver.ts";
import { cpuSeconds } from "./compare/proc.ts";

const total = Number(process.argv[2] ?? 1000);
const connections = Number(process.argv[3] ?? 10);
const bytes = Number(process.argv[4] ?? 10_000);
const rounds = 2;
const warmup = Math.min(50, total);
const runDeadlineMs = 120_000;
process.env.POSTERN_TEST_LOG = "warn";

const recipient = "alice@example.test";
const message = buildMessage({ to: recipient, subject: "store benchmark", text: bulkyText(bytes) });
const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `bench_stores_${process.pid}`;
const secret = "bench-secret-0123456789";

const work = await mkdtemp(join(tmpdir(), "postern-bench-stores-"));
const dovecot = await startDovecot({ users: [{ address: recipient }] });
const receiver = await startReceiver({ secret });

/** Reads the whole final message as a store would, and stores nothing: the pipeline's own cost. */
const drain: Plugin = {
  name: "bench:drain",
  hooks: {
    async queue(_transaction, final) {
      for await (const _chunk of final.stream());
      return accept();
    },
  },
};

async function measure(label: string, store: Plugin): Promise<number> {
  const server = await startTestServer({ plugins: [claimRecipients(), store] });
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port: server.port,
    pool: true,
    maxConnections: connections,
    maxMessages: Number.POSITIVE_INFINITY,
    ignoreTLS: true,
    name: "client.bench",
  });
  const send = () => transport.sendMail({ envelope: { from: "sender@example.org", to: recipient }, raw: message });
  try {
    await Promise.all(Array.from({ length: warmup }, send));
    const started = performance.now();
    // CPU of this process (server and client share it) and of Dovecot's processes, per message.
    const cpuBefore = process.cpuUsage();
    const dovecotBefore = cpuSeconds(dovecot.pid);
    const deadline = started + runDeadlineMs;
    let sent = 0;
    let failed = 0;
    let firstError: string | undefined;
    const worker = async () => {
      while (sent + failed < total && performance.now() < deadline) {
        sent++;
        await send().catch((error: Error & { response?: string }) => {
          sent--;
          failed++;
          firstError ??= error.response ?? error.message;
        });
      }
    };
    await Promise.all(Array.from({ length: connections }, worker));
    const seconds = (performance.now() - started) / 1000;
    const rate = sent / seconds;
    const cpu = process.cpuUsage(cpuBefore);
    const ownMs = (cpu.user + cpu.system) / 1000 / sent;
    const dovecotMs = ((cpuSeconds(dovecot.pid) - dovecotBefore) * 1000) / sent;
    console.log(
      `${label.padEnd(38)} ${rate.toFixed(0).padStart(6)} msg/s  (${sent} messages in ${seconds.toFixed(1)} s; CPU per message: Postern + client ${ownMs.toFixed(2)} ms, Dovecot ${dovecotMs.toFixed(2)} ms${failed ? `; ${failed} failed: ${firstError}` : ""})`,
    );
    return rate;
  } finally {
    transport.close();
    await server.stop();
  }
}

const maildirBefore = process.env.BENCH_MAILDIR_BEFORE
  ? ((await import(process.env.BENCH_MAILDIR_BEFORE)) as { default: typeof maildir }).default
  : undefined;
const onlyStores = process.env.BENCH_STORES?.split(",").filter(Boolean);
const stores = (
  [
    ["drain (no storage, reference)", () => drain],
    ["store-maildir (fsync)", () => maildir({ root: join(work, "maildir") })],
    ...(maildirBefore
      ? ([["store-maildir (fsync), earlier store", () => maildirBefore({ root: join(work, "maildir") })]] as const)
      : []),
    ["store-postgres", () => storePostgres({ connectionString: databaseUrl, schema })],
    ["lmtp → Dovecot (TCP), pooled", () => lmtp({ host: "127.0.0.1", port: dovecot.lmtpPort })],
    [
      "lmtp → Dovecot (TCP), 1 conn/msg",
      () => lmtp({ host: "127.0.0.1", port: dovecot.lmtpPort, connections: { maxMessages: 1 } }),
    ],
    ["webhook raw (node:http)", () => webhook({ url: receiver.url, format: "raw", secret })],
    ["webhook json (node:http)", () => webhook({ url: receiver.url, format: "json", secret })],
  ] as [string, () => Plugin][]
).filter(([label], index) => index === 0 || !onlyStores || onlyStores.some((prefix) => label.startsWith(prefix)));

console.log(
  `${total} messages of ${message.length} bytes per run, ${connections} connections, one recipient, node ${process.version}, ${cpus().length} CPUs, load ${loadavg()
    .map((value) => value.toFixed(2))
    .join(" ")}`,
);
const best = new Map<string, number>();
try {
  for (let round = 1; round <= rounds; round++) {
    console.log(`round ${round}`);
    for (const [label, store] of stores) {
      best.set(label, Math.max(best.get(label) ?? 0, await measure(label, store())));
      // Keep disk and database small between runs.
      await dovecot.clearMail();
      await rm(join(work, "maildir"), { recursive: true, force: true });
    }
  }
  console.log(`best of ${rounds} (load now ${loadavg()[0]!.toFixed(2)}):`);
  const reference = best.get(stores[0]![0])!;
  for (const [label] of stores) {
    const rate = best.get(label)!;
    console.log(
      `  ${label.padEnd(38)} ${rate.toFixed(0).padStart(6)} msg/s  (${((rate / reference) * 100).toFixed(0)}%)`,
    );
  }
} finally {
  execFileSync("psql", [databaseUrl, "-q", "-c", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`]);
  await receiver.close();
  await dovecot.stop();
  await rm(work, { recursive: true, force: true });
}
