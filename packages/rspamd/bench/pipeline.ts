// The content-filtering row of issue 14: Postern's full inbound pipeline (rate-limit, recipients,
// spf, dkim, dmarc, Maildir with fsync) alone, plus rspamd, plus ClamAV, plus both — msg/s and CPU
// per message, with rspamd's and clamd's own CPU and time shown apart from Postern's.
//   node --conditions=dev-source packages/rspamd/bench/pipeline.ts
// Knobs: BENCH_RUNS (3), BENCH_MESSAGES per run (300), BENCH_SESSIONS (20), BENCH_RSPAMD_WORKERS (2).
// Client: Postfix's smtp-source sending a DKIM-signed (RSA-2048) 10 KB message, one per connection,
// to user@bench.test; it stops at the first unexpected reply, so every message counted was stored.
// rspamd runs Debian's stock configuration (bench/stock-rspamd.ts); clamd a one-signature database
// (signatures cannot be downloaded here), so clamd's figures are a floor for a real database.
import { execFileSync, fork, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startClamd } from "@postern/clamav/testing";
import { generateDkimKey, splitTxtValue } from "@postern/dkim";
import { reverseName, startFakeDns } from "@postern/testing";
import nodemailer from "nodemailer";
import { startStockRspamd } from "./stock-rspamd.ts";

const runs = Number(process.env.BENCH_RUNS ?? 3);
const messages = Number(process.env.BENCH_MESSAGES ?? 300);
const sessions = Number(process.env.BENCH_SESSIONS ?? 20);
const rspamdWorkers = Number(process.env.BENCH_RSPAMD_WORKERS ?? 2);
const log = (text: string) => process.stderr.write(`${text}\n`);
const ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** CPU seconds (user + system) of a process and all its descendants, from /proc. */
function cpuSeconds(root: number): number {
  const children = new Map<number, number[]>();
  const own = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // The command name may hold spaces and parentheses; the fields after the last ")" do not.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const parent = Number(fields[1]);
      own.set(Number(entry), (Number(fields[11]) + Number(fields[12])) / ticksPerSecond);
      children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
    } catch {
      // exited while we looked
    }
  }
  let total = 0;
  const tree = [root];
  for (let index = 0; index < tree.length; index++) {
    total += own.get(tree[index]!) ?? 0;
    tree.push(...(children.get(tree[index]!) ?? []));
  }
  return total;
}

const work = await mkdtemp(join(tmpdir(), "postern-rspamd-bench-"));
const loadBefore = loadavg();
const dkimKey = generateDkimKey({ algorithm: "rsa", bits: 2048 });
const dns = await startFakeDns({
  "example.org": { TXT: ["v=spf1 ip4:127.0.0.0/8 -all"], A: ["127.0.0.1"], MX: ["10 mail.example.org"] },
  "mail.example.org": { A: ["127.0.0.1"] },
  "bench._domainkey.example.org": { TXT: [splitTxtValue(dkimKey.record)] },
  "_dmarc.example.org": { TXT: ["v=DMARC1; p=reject; adkim=s; aspf=r"] },
  [reverseName("127.0.0.1")]: { PTR: ["localhost"] },
  localhost: { A: ["127.0.0.1"] },
  "bench.test": { MX: ["10 mx.bench.test"] },
});

/** A DKIM-signed message of ~10 KB, LF line ends (smtp-source -F adds CR). */
async function signedMessageFile(): Promise<string> {
  const transport = nodemailer.createTransport({
    streamTransport: true,
    buffer: true,
    newline: "windows",
    dkim: { domainName: "example.org", keySelector: "bench", privateKey: dkimKey.privateKeyPem },
  });
  const line = `${"The quick brown fox jumps over the lazy dog. ".repeat(2).slice(0, 76)}\n`;
  const info = await transport.sendMail({
    from: "Bench <bench@example.org>",
    to: "user@bench.test",
    subject: "benchmark",
    date: new Date(),
    text: line.repeat(Math.ceil(10_240 / line.length)),
  });
  const path = join(work, "signed.eml");
  await writeFile(path, (info.message as Buffer).toString("latin1").replace(/\r\n/g, "\n"), "latin1");
  return path;
}
const messageFile = await signedMessageFile();

log(`starting rspamd (Debian's stock configuration, ${rspamdWorkers} workers) and clamd …`);
const [rspamdDaemon, clamd] = await Promise.all([
  startStockRspamd({ dnsServer: dns.servers[0]!, workers: rspamdWorkers }),
  startClamd(),
]);
log(
  `rspamd answered after ${(rspamdDaemon.startMs / 1000).toFixed(1)} s, clamd after ${(clamd.startMs / 1000).toFixed(1)} s`,
);

interface Stats {
  messages: number;
  rspamdMs: number;
  rspamdScanMs: number;
  rspamdScans: number;
  clamdMs: number;
  clamdScans: number;
  unscanned: number;
}

const rows = [
  { id: "pipeline", label: "full pipeline" },
  { id: "rspamd", label: "full pipeline + rspamd" },
  { id: "clamav", label: "full pipeline + ClamAV" },
  { id: "both", label: "full pipeline + rspamd + ClamAV" },
] as const;

const serverScript = fileURLToPath(new URL("./server.ts", import.meta.url));
const servers = await Promise.all(
  rows.map(async (row) => {
    const child = fork(serverScript, [row.id, dns.servers[0]!, rspamdDaemon.url, clamd.tcpAddress], {
      execArgv: ["--conditions=dev-source"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const ready = await new Promise<{ port: number }>((resolve, reject) => {
      child.once("message", (message: { type: string; port: number }) => resolve(message));
      child.once("exit", (code) => reject(new Error(`${row.id} server exited (${code})`)));
    });
    return { row, child, port: ready.port };
  }),
);

function ask<T>(child: (typeof servers)[number]["child"], type: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (message: { type: string }) => {
      if (message.type !== type) return;
      child.off("message", onMessage);
      resolve(message as T);
    };
    child.on("message", onMessage);
    child.send({ type });
  });
}

function smtpSource(port: number, count: number): Promise<{ seconds: number; error: string | undefined }> {
  const args = ["-s", String(sessions), "-m", String(count), "-F", messageFile, "-f", "bench@example.org"];
  args.push("-t", "user@bench.test", "-M", "client.bench", "-C", "5", `127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn("smtp-source", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("exit", (code) =>
      resolve({
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
        error: code === 0 ? undefined : stderr.trim().split("\n")[0] || `exit ${code}`,
      }),
    );
  });
}

interface Measured {
  rate: number;
  posternCpuMs: number;
  rspamdCpuMs: number;
  clamdCpuMs: number;
  rspamdCheckMs: number;
  rspamdScanMs: number;
  clamdScanMs: number;
}
const results = new Map<string, Measured[]>(rows.map((row) => [row.id, []]));

async function measure(server: (typeof servers)[number], count: number): Promise<Measured> {
  await ask(server.child, "reset");
  const before = {
    postern: cpuSeconds(server.child.pid!),
    rspamd: cpuSeconds(rspamdDaemon.pid),
    clamd: cpuSeconds(clamd.pid),
  };
  const run = await smtpSource(server.port, count);
  const after = {
    postern: cpuSeconds(server.child.pid!),
    rspamd: cpuSeconds(rspamdDaemon.pid),
    clamd: cpuSeconds(clamd.pid),
  };
  const stats = await ask<Stats>(server.child, "stats");
  if (run.error) throw new Error(`${server.row.id}: smtp-source stopped: ${run.error}`);
  if (stats.messages !== count || stats.unscanned > 0) {
    throw new Error(
      `${server.row.id}: ${stats.messages} of ${count} messages reached the data hooks, ${stats.unscanned} unscanned`,
    );
  }
  const perMessage = (seconds: number) => (seconds * 1000) / count;
  return {
    rate: count / run.seconds,
    posternCpuMs: perMessage(after.postern - before.postern),
    rspamdCpuMs: perMessage(after.rspamd - before.rspamd),
    clamdCpuMs: perMessage(after.clamd - before.clamd),
    rspamdCheckMs: stats.rspamdScans ? stats.rspamdMs / stats.rspamdScans : 0,
    rspamdScanMs: stats.rspamdScans ? stats.rspamdScanMs / stats.rspamdScans : 0,
    clamdScanMs: stats.clamdScans ? stats.clamdMs / stats.clamdScans : 0,
  };
}

try {
  log("warm-up …");
  for (const server of servers) await measure(server, Math.min(60, messages));
  for (let run = 1; run <= runs; run++) {
    // Interleaved run by run, so a change of the machine's load hits every row alike.
    for (const server of servers) {
      const measured = await measure(server, messages);
      results.get(server.row.id)!.push(measured);
      log(`run ${run} ${server.row.id}: ${measured.rate.toFixed(0)} msg/s`);
    }
  }
} finally {
  for (const server of servers) server.child.send({ type: "stop" });
  await Promise.all([rspamdDaemon.stop(), clamd.stop(), dns.close()]);
  await rm(work, { recursive: true, force: true });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};
const range = (values: number[], digits: number) =>
  `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;
const loadAfter = loadavg();
const table = [
  "| row | msg/s (median; range) | Postern CPU ms/msg | rspamd CPU ms/msg | clamd CPU ms/msg | rspamd check ms (its own scan) | clamd scan ms |",
  "| --- | --- | --- | --- | --- | --- | --- |",
  ...rows.map((row) => {
    const list = results.get(row.id)!;
    const pick = (key: keyof Measured, digits = 2) => median(list.map((entry) => entry[key])).toFixed(digits);
    const uses = (what: "rspamd" | "clamav") => row.id === what || row.id === "both";
    return `| ${row.label} | ${pick("rate", 0)} (${range(
      list.map((entry) => entry.rate),
      0,
    )}) | ${pick("posternCpuMs")} | ${
      uses("rspamd") ? pick("rspamdCpuMs") : "—"
    } | ${uses("clamav") ? pick("clamdCpuMs") : "—"} | ${uses("rspamd") ? `${pick("rspamdCheckMs", 1)} (${pick("rspamdScanMs", 1)})` : "—"} | ${
      uses("clamav") ? pick("clamdScanMs", 1) : "—"
    } |`;
  }),
];
console.log(
  [
    `${new Date().toISOString()}: ${runs} runs of ${messages} messages (DKIM-signed 10 KB), ${sessions} sessions, 1 message per connection`,
    `load average before ${loadBefore.map((value) => value.toFixed(2)).join(" ")}, after ${loadAfter.map((value) => value.toFixed(2)).join(" ")}; rspamd ${rspamdWorkers} workers (stock Debian rules), clamd 1 signature`,
    "",
    ...table,
  ].join("\n"),
);
process.exit(0);
