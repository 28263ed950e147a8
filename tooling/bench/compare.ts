// Postern against Haraka, Postfix, a bare smtp-server and smtp-sink, in one run on loopback, with
// Postfix's smtp-source as the one client. See BENCHMARKS.md for what each row is and the targets.
//   node --conditions=dev-source tooling/bench/compare.ts
// Installs what it needs: Debian's postfix package (apt-get; run as root) and Haraka 3 from the npm
// registry into a temp folder. Prints one report and writes it to tooling/bench/results/.
// Knobs (environment): BENCH_RUNS (5), BENCH_SECONDS per run (2), BENCH_ROWS (comma-separated row
// ids to run, default all; start-discard-w1/-w2 and start-maildir-w1/-w2 run the real `postern start
// --workers N`), BENCH_IDLE sessions (5000), BENCH_LARGE_MB (30), BENCH_PARTS
// (throughput,large,idle), BENCH_MAX_LOAD (wait for a 1-minute load average below it first),
// BENCH_RELAY_BEFORE (earlier checkouts, comma-separated: their relay rows run beside this tree's).
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
} from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateDkimKey, splitTxtValue } from "@postern/dkim";
import { type FakeDns, reverseName, startFakeDns } from "@postern/testing";
import nodemailer from "nodemailer";
import { ensureHaraka, type HarakaSetup, harakaConfig, harakaPreload } from "./compare/haraka.ts";
import type { LatencyRequest, LatencyResult } from "./compare/latency-client.ts";
import {
  exited,
  freePort,
  type RunningServer,
  type StartResult,
  spawnWithFdLimit,
  startForeignServer,
  startNodeServer,
} from "./compare/launch.ts";
import { startPosternCommand } from "./compare/postern-start.ts";
import { ensurePostfixPackage, startPostfix } from "./compare/postfix.ts";
import {
  cpuSeconds,
  idleShare,
  machineTicks,
  peakRss,
  postgresCpuSeconds,
  resetPeak,
  rss,
  sampleTreeRss,
} from "./compare/proc.ts";
import { mb, median, table } from "./compare/report.ts";
import { type Payload, type Scenario, scenarios, smtpSource } from "./compare/smtp-source.ts";

const runs = Number(process.env.BENCH_RUNS ?? 5);
const secondsPerRun = Number(process.env.BENCH_SECONDS ?? 2);
const idleSessions = Number(process.env.BENCH_IDLE ?? 5000);
const largeMb = Number(process.env.BENCH_LARGE_MB ?? 30);
const onlyRows = process.env.BENCH_ROWS?.split(",").filter(Boolean);
const parts = new Set((process.env.BENCH_PARTS ?? "throughput,latency,large,idle").split(","));
const messageBytes = 10 * 1024;

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

// Other work on the machine skews every figure: optionally wait (15 minutes at most) until the
// 1-minute load average is below BENCH_MAX_LOAD.
const maxLoad = process.env.BENCH_MAX_LOAD ? Number(process.env.BENCH_MAX_LOAD) : undefined;
if (maxLoad !== undefined) {
  const until = Date.now() + 15 * 60_000;
  while (loadavg()[0]! >= maxLoad && Date.now() < until) {
    log(`load average ${loadavg()[0]!.toFixed(2)} ≥ ${maxLoad}: waiting`);
    await new Promise((resolve) => setTimeout(resolve, 15_000));
  }
}
const started = Date.now();
const loadBefore = loadavg();

// ---------------------------------------------------------------------------------------------
// What the run needs: the tools, a DNS zone for the pipeline, a DKIM-signed message.

const postfixVersion = ensurePostfixPackage(log);
const haraka = ensureHaraka(log);
const work = await mkdtemp(join(tmpdir(), "postern-bench-compare-"));

const dkimKey = generateDkimKey({ algorithm: "rsa", bits: 2048 });
const dns: FakeDns = await startFakeDns({
  "example.org": { TXT: ["v=spf1 ip4:127.0.0.0/8 -all"], A: ["127.0.0.1"] },
  "bench._domainkey.example.org": { TXT: [splitTxtValue(dkimKey.record)] },
  "_dmarc.example.org": { TXT: ["v=DMARC1; p=reject; adkim=s; aspf=r"] },
  [reverseName("127.0.0.1")]: { PTR: ["localhost"] },
  localhost: { A: ["127.0.0.1"] },
  "bench.test": { MX: ["10 mx.bench.test"] },
});

/** A DKIM-signed message of ~10 KB for the pipeline rows, LF line ends (smtp-source -F adds CR). */
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
    messageId: "<bench@example.org>",
    date: new Date(),
    text: line.repeat(Math.ceil(messageBytes / line.length)),
  });
  const path = join(work, "signed.eml");
  await writeFile(path, (info.message as Buffer).toString("latin1").replace(/\r\n/g, "\n"), "latin1");
  return path;
}
const plain: Payload = { length: messageBytes };
const signed: Payload = { file: await signedMessageFile() };

// ---------------------------------------------------------------------------------------------
// The servers.

interface Row {
  id: string;
  label: string;
  /** The pre-greeting delay it runs with (every server in the table states one). */
  delay: string;
  payload: Payload;
  start(): Promise<StartResult>;
  /** Where it stores: files to count after each run (and to remove between runs). */
  storedFiles?(server: RunningServer): string | undefined;
  /**
   * Acknowledges on queueing and stores or relays after (Postfix, the relay rows): wait for the
   * Maildir or the sink to have them, and report that rate too under `deliveredLabel`.
   */
  waitsForDelivery?: boolean;
  deliveredLabel?: string;
  /** Checks one stored message after the warm-up; returns what is wrong with it. */
  checkStored?(message: string): string | undefined;
  /** Queues in PostgreSQL: the database's CPU per message is reported beside the server's. */
  usesPostgres?: boolean;
}

const dnsServer = dns.servers[0]!;
let postfixMaildir: string | undefined;
let harakaMaildir: string | undefined;

async function startHaraka(port: number, setup: HarakaSetup): Promise<StartResult> {
  const dir = await harakaConfig(haraka.packageDir, port, setup);
  const server = await startForeignServer(process.execPath, ["--require", harakaPreload, haraka.bin, "-c", dir], port, {
    env: { ...process.env, YES_REALLY_DO_DISCARD: "1", BENCH_DNS_SERVER: dnsServer },
    logFile: join(work, "haraka.log"),
  });
  return {
    ...server,
    async stop() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** smtp-sink -c writes "sess=… quit=… mesg=N" after every message; the last N is its count. */
function sinkCount(logFile: string): number {
  const { size } = statSync(logFile);
  const tail = Buffer.alloc(Math.min(size, 256));
  const fd = openSync(logFile, "r");
  try {
    readSync(fd, tail, 0, tail.length, size - tail.length);
  } finally {
    closeSync(fd);
  }
  const counts = [...tail.toString("latin1").matchAll(/mesg=(\d+)/g)];
  return counts.length > 0 ? Number(counts.at(-1)![1]) : 0;
}

/**
 * A relay row: an smtp-sink (the next hop, counting what it receives) and the relaying server.
 * Only the server's processes count for CPU and memory; the sink is the same for every row.
 */
async function startRelay(startServer: (sinkPort: number) => Promise<StartResult>): Promise<StartResult> {
  const sinkPort = await freePort();
  const logFile = join(work, `relay-sink-${sinkPort}.log`);
  const sink = await startForeignServer(
    "smtp-sink",
    ["-c", "-u", "nobody", `127.0.0.1:${sinkPort}`, "1024"],
    sinkPort,
    {
      logFile,
    },
  );
  const server = await startServer(sinkPort);
  if ("unavailable" in server) {
    await sink.stop();
    return server;
  }
  return {
    ...server,
    delivered: () => sinkCount(logFile),
    async stop() {
      await server.stop();
      await sink.stop();
    },
  };
}

/** What a stored message's header lacks of the authentication results it must carry. */
function missingResults(message: string, expected: string[]): string | undefined {
  const header = message.split("\r\n\r\n")[0] ?? "";
  const missing = expected.filter((result) => !header.includes(result));
  return missing.length > 0 ? `stored message lacks ${missing.join(", ")} in Authentication-Results` : undefined;
}

/**
 * Postern relaying every recipient to its own smtp-sink, through `server` (this tree's
 * compare/postern-server.ts unless an earlier checkout's), queued in a folder or in PostgreSQL (a
 * schema of its own per row, `schemaTag` telling checkouts apart).
 */
function posternRelayRow(row: {
  id: string;
  label: string;
  queue: "fs" | "pg";
  server?: string;
  schemaTag?: string;
  env?: Record<string, string>;
}): Row {
  const schema = (sinkPort: number) =>
    `bench_relay_${row.schemaTag ? `${row.schemaTag}_` : ""}${process.pid}_${sinkPort}`;
  return {
    id: row.id,
    label: row.label,
    delay: "0",
    payload: plain,
    usesPostgres: row.queue === "pg",
    waitsForDelivery: true,
    deliveredLabel: "until delivered",
    start: () =>
      startRelay((sinkPort) =>
        startNodeServer(row.server ?? "./postern-server.ts", [`relay-${row.queue}`, dnsServer], {
          BENCH_SINK_PORT: String(sinkPort),
          ...(row.queue === "pg" ? { BENCH_PG_SCHEMA: schema(sinkPort) } : {}),
          ...row.env,
        }),
      ),
  };
}

const rows: Row[] = [
  {
    id: "sink",
    label: "smtp-sink (the client's ceiling)",
    delay: "0",
    payload: plain,
    async start() {
      const port = await freePort();
      return startForeignServer("smtp-sink", ["-u", "nobody", `127.0.0.1:${port}`, "1024"], port, {
        logFile: join(work, "smtp-sink.log"),
      });
    },
  },
  {
    id: "bare",
    label: "bare smtp-server, empty onData",
    delay: "0 (patched like Postern)",
    payload: plain,
    start: () => startNodeServer("./bare-server.ts", ["0"]),
  },
  {
    id: "bare-stock",
    label: "bare smtp-server, empty onData",
    delay: "100 ms (smtp-server's fixed)",
    payload: plain,
    start: () => startNodeServer("./bare-server.ts", ["stock"]),
  },
  {
    id: "haraka",
    label: `Haraka ${haraka.version}, queue/discard`,
    delay: "0 (no early_talker)",
    payload: plain,
    start: async () => startHaraka(await freePort(), { kind: "discard" }),
  },
  {
    id: "haraka-pipeline",
    label: `Haraka ${haraka.version}, spf + dkim → Maildir (fsync)`,
    delay: "0 (no early_talker)",
    payload: signed,
    async start() {
      const port = await freePort();
      const maildir = join(work, `haraka-maildir-${port}`);
      harakaMaildir = maildir;
      return startHaraka(port, { kind: "pipeline", maildir });
    },
    storedFiles: () => harakaMaildir && join(harakaMaildir, "new"),
    checkStored: (message) => missingResults(message, ["spf=pass", "dkim=pass"]),
  },
  {
    id: "postern",
    label: "Postern, accept and discard",
    delay: "0 (listener default)",
    payload: plain,
    start: () => startNodeServer("./postern-server.ts", ["discard", dnsServer]),
  },
  {
    id: "postern-maildir",
    label: "Postern → Maildir (fsync)",
    delay: "0",
    payload: plain,
    start: () => startNodeServer("./postern-server.ts", ["maildir", dnsServer]),
    storedFiles: (server) => server.maildirRoot && join(server.maildirRoot, "bench.test", "user", "new"),
  },
  {
    // What `postern start` would gain from a larger libuv pool: fsyncs block one of its threads
    // each (4 by default), and concurrent fsyncs share the disk's cache flushes.
    id: "postern-maildir-pool16",
    label: "Postern → Maildir (fsync), UV_THREADPOOL_SIZE=16",
    delay: "0",
    payload: plain,
    start: () => startNodeServer("./postern-server.ts", ["maildir", dnsServer], { UV_THREADPOOL_SIZE: "16" }),
    storedFiles: (server) => server.maildirRoot && join(server.maildirRoot, "bench.test", "user", "new"),
  },
  // Before/after in one run: BENCH_MAILDIR_BEFORE=<path of an earlier store-maildir's index.ts>
  // (e.g. one extracted with `git archive <commit> packages/store-maildir`).
  ...(process.env.BENCH_MAILDIR_BEFORE
    ? [
        {
          id: "postern-maildir-before",
          label: "Postern → Maildir (fsync), earlier store",
          delay: "0",
          payload: plain,
          start: () =>
            startNodeServer("./postern-server.ts", ["maildir", dnsServer], {
              BENCH_MAILDIR_MODULE: process.env.BENCH_MAILDIR_BEFORE,
            }),
          storedFiles: (server: RunningServer) =>
            server.maildirRoot && join(server.maildirRoot, "bench.test", "user", "new"),
        } satisfies Row,
      ]
    : []),
  // The real `postern start`, alone and with 2 workers sharing the listener (its default thread
  // pool of 16 in every process): what a second core buys.
  ...([1, 2] as const).flatMap((workers) => [
    {
      id: `start-discard-w${workers}`,
      label: `postern start --workers ${workers}, discard`,
      delay: "0",
      payload: plain,
      start: () => startPosternCommand({ mode: "discard", workers, dnsServer }),
    } satisfies Row,
    {
      id: `start-maildir-w${workers}`,
      label: `postern start --workers ${workers} → Maildir (fsync)`,
      delay: "0",
      payload: plain,
      start: () => startPosternCommand({ mode: "maildir", workers, dnsServer }),
      storedFiles: (server: RunningServer) =>
        server.maildirRoot && join(server.maildirRoot, "bench.test", "user", "new"),
    } satisfies Row,
  ]),
  {
    id: "postfix",
    label: `Postfix ${postfixVersion} → Maildir (fsync), at 250`,
    delay: "0",
    payload: plain,
    waitsForDelivery: true,
    async start() {
      const instance = await startPostfix(await freePort(), { log: Boolean(process.env.BENCH_POSTFIX_LOG) });
      postfixMaildir = join(instance.maildir, "user", "new");
      return { port: instance.port, pid: instance.masterPid(), multiProcess: true, stop: () => instance.stop() };
    },
    storedFiles: () => postfixMaildir,
  },
  posternRelayRow({
    id: "postern-relay-fs",
    label: "Postern relay, filesystem queue → smtp-sink, at 250",
    queue: "fs",
  }),
  posternRelayRow({
    id: "postern-relay-pg",
    label: "Postern relay, PostgreSQL queue → smtp-sink, at 250",
    queue: "pg",
  }),
  // The PostgreSQL relay with a client pool as large as its delivery concurrency (20): with the
  // default 10, 20 sessions' enqueues and the worker's claims and completions share 10 clients.
  posternRelayRow({
    id: "postern-relay-pg-pool20",
    label: "Postern relay, PostgreSQL queue, maxConnections 20, at 250",
    queue: "pg",
    env: { BENCH_PG_MAX_CONNECTIONS: "20" },
  }),
  // The relay with the thread pool `postern start` gives it (16): its O_DSYNC writes each hold
  // a pool thread for a disk flush, and the renames, opens and unlinks queue behind them.
  posternRelayRow({
    id: "postern-relay-fs-pool16",
    label: "Postern relay, filesystem queue, UV_THREADPOOL_SIZE=16, at 250",
    queue: "fs",
    env: { UV_THREADPOOL_SIZE: "16" },
  }),
  // Before/after in one run: BENCH_RELAY_BEFORE=<earlier checkouts of this repository, comma-
  // separated, e.g. `git worktree add`s with their own `pnpm install`>; each one's own
  // compare/postern-server.ts relays, in rows named after the checkout's folder.
  ...(process.env.BENCH_RELAY_BEFORE ?? "")
    .split(",")
    .filter(Boolean)
    .flatMap((tree) =>
      (["fs", "pg"] as const).map((queue) =>
        posternRelayRow({
          id: `postern-relay-${queue}-${basename(tree)}`,
          label: `Postern relay, ${queue === "fs" ? "filesystem" : "PostgreSQL"} queue, ${basename(tree)}, at 250`,
          queue,
          server: join(tree, "tooling/bench/compare/postern-server.ts"),
          schemaTag: basename(tree).replace(/\W/g, "_"),
        }),
      ),
    ),
  {
    id: "postfix-relay",
    label: `Postfix ${postfixVersion} relay → smtp-sink, at 250`,
    delay: "0",
    payload: plain,
    waitsForDelivery: true,
    deliveredLabel: "until delivered",
    start: () =>
      startRelay(async (sinkPort) => {
        const instance = await startPostfix(await freePort(), {
          log: Boolean(process.env.BENCH_POSTFIX_LOG),
          relayTo: sinkPort,
        });
        return { port: instance.port, pid: instance.masterPid(), multiProcess: true, stop: () => instance.stop() };
      }),
  },
  {
    id: "pipeline",
    label: "Postern full pipeline → Maildir",
    delay: "0",
    payload: signed,
    start: () => startNodeServer("./postern-server.ts", ["pipeline", dnsServer]),
    storedFiles: (server) => server.maildirRoot && join(server.maildirRoot, "bench.test", "user", "new"),
    // Every check must really run and pass: a DNS failure would make the row fast and meaningless.
    checkStored: (message) => missingResults(message, ["spf=pass", "dkim=pass", "dmarc=pass"]),
  },
  {
    // Like for like with haraka-pipeline: the checks Haraka's row runs (recipient domain, SPF,
    // DKIM verification, a Maildir store that fsyncs before 250), without DMARC and rate limits.
    id: "pipeline-same",
    label: "Postern spf + dkim → Maildir (Haraka's checks)",
    delay: "0",
    payload: signed,
    start: () => startNodeServer("./postern-server.ts", ["pipeline-same", dnsServer]),
    storedFiles: (server) => server.maildirRoot && join(server.maildirRoot, "bench.test", "user", "new"),
    checkStored: (message) => missingResults(message, ["spf=pass", "dkim=pass"]),
  },
];

// ---------------------------------------------------------------------------------------------
// Throughput: smtp-source, warm-up, then `runs` runs per scenario; the median counts.

interface Cell {
  rates: number[];
  median: number;
  /** Server CPU time (user + system, all its processes) per message, in ms, per run. */
  cpuPerMessage: number[];
  /** Rows that queue in PostgreSQL: the database's CPU per message, in ms, per run. */
  databaseCpuPerMessage: number[];
  /** Postfix only: messages per second until all were in the Maildir. */
  deliveredRates: number[];
  /** The share of the machine's CPU (both cores) that was idle during each run. */
  idle: number[];
  error?: string;
}
interface RowResult {
  row: Row;
  unavailable?: string;
  cells: Record<string, Cell>;
  peakRss: number;
  /** Transaction latency at a fraction of the row's peak, keyed `${scenario id}@${load}`. */
  latency: Record<string, LatencyCell>;
  /** The latency client's own closed-loop msg/s per latency scenario (the 100% of its loads). */
  latencyPeaks: Record<string, number>;
}

interface LatencyCell {
  /** Offered msg/s: the load × the row's median msg/s in that scenario. */
  rate: number;
  result?: LatencyResult;
  error?: string;
}

// Latency at these fractions of each row's own peak, in the scenarios the client can reproduce:
// one message per connection (new connections as they arrive) and 20 reused connections.
const latencyLoads = [0.5, 0.9];
const latencyScenarios = [
  { scenario: "s20", connections: 0 },
  { scenario: "s20d", connections: 20 },
];
const latencySeconds = Number(process.env.BENCH_LATENCY_SECONDS ?? 4);

const countFiles = (dir: string | undefined) => (dir && existsSync(dir) ? readdirSync(dir).length : 0);
/**
 * Starts a run with an empty `dir` by moving the full one aside (a rename), not by deleting its
 * files. Deleting thousands of files right before a run would skew it: on ext4 without a journal
 * (this machine's root file system) every new inode is then allocated past the inodes deleted in
 * the last 30 s of its block group ("recently_deleted" in the kernel profile), up to twice the
 * kernel time per created file. Real Maildir servers do not delete at that rate. The moved-aside
 * directories go with the server's data when it stops.
 */
let rotations = 0;
const emptyDir = (dir: string | undefined) => {
  if (!dir || !existsSync(dir) || readdirSync(dir).length === 0) return;
  const { uid, gid, mode } = statSync(dir);
  renameSync(dir, `${dir}.run-${++rotations}`);
  mkdirSync(dir, { mode: mode & 0o777 });
  chownSync(dir, uid, gid);
};

/** Messages the row's server has stored (files in its Maildir) or delivered (its sink's count). */
function deliveredSoFar(row: Row, server: RunningServer): number | undefined {
  const stored = row.storedFiles?.(server);
  if (stored !== undefined) return countFiles(stored);
  return server.delivered?.();
}

/**
 * Waits until `count` more messages than `before` are stored or delivered; says what is missing
 * if they are not within the time (2 s for a store that answers 250 after storing, 120 s for a
 * server that stores or relays after its 250).
 */
async function awaitDelivered(row: Row, server: RunningServer, before: number, count: number) {
  const deadline = Date.now() + (row.waitsForDelivery ? 120_000 : 2000);
  for (;;) {
    const done = (deliveredSoFar(row, server) ?? 0) - before;
    if (done >= count) return undefined;
    if (Date.now() > deadline) {
      return `only ${done} of ${count} acknowledged messages were ${row.storedFiles ? "stored" : "delivered"}`;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One smtp-source run against one server; for servers that store or relay, waits until all is. */
async function sourceRun(row: Row, server: RunningServer, scenario: Scenario, messages: number) {
  emptyDir(row.storedFiles?.(server));
  const before = deliveredSoFar(row, server);
  const run = await smtpSource(server.port, scenario, messages, row.payload);
  let deliveredSeconds = run.seconds;
  if (!run.error && before !== undefined) {
    const startedWaiting = Date.now();
    run.error = await awaitDelivered(row, server, before, messages);
    deliveredSeconds += (Date.now() - startedWaiting) / 1000;
  }
  return { ...run, deliveredSeconds };
}

interface Contender {
  row: Row;
  server: RunningServer;
  result: RowResult;
  stopSampling: (() => number) | undefined;
  /** Messages per run in the current scenario (from its warm-up rate), or undefined if it failed. */
  messages: number | undefined;
}

/**
 * Every server is started up front and the runs are interleaved — run 1 of each server, then run
 * 2 of each … — so a change in the machine's load during the run hits every server alike and the
 * ratios stay fair.
 */
async function measureThroughput(selected: Row[]): Promise<RowResult[]> {
  const results: RowResult[] = [];
  const contenders: Contender[] = [];
  for (const row of selected) {
    const result: RowResult = { row, cells: {}, peakRss: Number.NaN, latency: {}, latencyPeaks: {} };
    results.push(result);
    log(`${row.label} (${row.id}): starting`);
    const server = await row.start();
    if ("unavailable" in server) {
      log(`${row.id}: n/a — ${server.unavailable}`);
      result.unavailable = server.unavailable;
      continue;
    }
    const stopSampling = server.multiProcess ? sampleTreeRss(server.pid) : undefined;
    contenders.push({ row, server, result, stopSampling, messages: undefined });
  }
  try {
    for (const scenario of parts.has("throughput") ? scenarios : []) {
      for (const contender of contenders) {
        const { row, server, result } = contender;
        const cell: Cell = {
          rates: [],
          median: Number.NaN,
          cpuPerMessage: [],
          databaseCpuPerMessage: [],
          deliveredRates: [],
          idle: [],
        };
        result.cells[scenario.id] = cell;
        contender.messages = undefined;
        // Warm-up: JIT, caches, process pools; it also tells how many messages make a run of ~N s.
        const warm = await sourceRun(row, server, scenario, Math.max(2 * scenario.sessions, 400));
        const stored = row.storedFiles?.(server);
        const [first] = stored && existsSync(stored) ? readdirSync(stored) : [];
        const problem =
          warm.error ??
          (row.checkStored
            ? first
              ? row.checkStored(readFileSync(join(stored!, first), "latin1"))
              : "nothing stored"
            : undefined);
        if (problem) {
          cell.error = problem;
          log(`${row.id} ${scenario.label}: FAILED: ${problem}`);
          continue;
        }
        const rate = warm.messages / warm.seconds;
        contender.messages = Math.min(50_000, Math.max(2 * scenario.sessions, Math.round(rate * secondsPerRun)));
      }
      for (let index = 0; index < runs; index++) {
        for (const contender of contenders) {
          const { row, server, result, messages } = contender;
          const cell = result.cells[scenario.id]!;
          if (messages === undefined || cell.error) continue;
          const cpuBefore = cpuSeconds(server.pid);
          const databaseBefore = row.usesPostgres ? postgresCpuSeconds() : 0;
          const ticksBefore = machineTicks();
          const run = await sourceRun(row, server, scenario, messages);
          cell.idle.push(idleShare(ticksBefore, machineTicks()));
          cell.cpuPerMessage.push(((cpuSeconds(server.pid) - cpuBefore) * 1000) / messages);
          if (row.usesPostgres)
            cell.databaseCpuPerMessage.push(((postgresCpuSeconds() - databaseBefore) * 1000) / messages);
          if (run.error) {
            cell.error = run.error;
            log(`${row.id} ${scenario.label}: FAILED: ${run.error}`);
            continue;
          }
          cell.rates.push(run.messages / run.seconds);
          if (row.waitsForDelivery) cell.deliveredRates.push(run.messages / run.deliveredSeconds);
        }
      }
      for (const { row, server, result } of contenders) {
        emptyDir(row.storedFiles?.(server));
        const cell = result.cells[scenario.id]!;
        if (cell.error) continue;
        cell.median = median(cell.rates);
        log(
          `${row.id} ${scenario.label}: ${cell.median.toFixed(0)} msg/s (${cell.rates.map((rate) => rate.toFixed(0)).join(", ")})`,
        );
      }
    }
    if (parts.has("latency")) await measureLatencies(contenders);
  } finally {
    for (const { server, result, stopSampling } of contenders) {
      result.peakRss = stopSampling ? stopSampling() : peakRss(server.pid);
      await server.stop();
    }
  }
  return results;
}

/** One open-loop run of compare/latency-client.ts (its own process) against one server. */
async function latencyRun(port: number, request: Omit<LatencyRequest, "port">): Promise<LatencyResult> {
  const client = spawnWithFdLimit(
    process.execPath,
    [fileURLToPath(new URL("./compare/latency-client.ts", import.meta.url))],
    { ipc: true },
  );
  const answer = new Promise<LatencyResult>((resolve, reject) => {
    client.once("message", (message: LatencyResult) => resolve(message));
    client.once("exit", (code) => reject(new Error(`latency client exited (${code}) without an answer`)));
  });
  client.send({ port, ...request } satisfies LatencyRequest);
  try {
    return await answer;
  } finally {
    await exited(client, 5000);
  }
}

/**
 * Latency at 50% and 90% of each row's peak (its median msg/s in the same scenario, measured just
 * before), servers interleaved load by load as in the throughput runs.
 */
async function measureLatencies(contenders: Contender[]): Promise<void> {
  for (const { scenario, connections } of latencyScenarios) {
    // The peak this client reaches against each server (closed loop, 20 sessions), which the
    // offered loads are fractions of.
    for (const { row, server, result } of contenders) {
      emptyDir(row.storedFiles?.(server));
      const before = deliveredSoFar(row, server);
      try {
        const peak = await latencyRun(server.port, {
          rate: "peak",
          seconds: latencySeconds,
          connections,
          payload: row.payload,
        });
        const problem =
          (peak.failed ? `${peak.failed} failed: ${peak.firstError}` : undefined) ??
          (before !== undefined ? await awaitDelivered(row, server, before, peak.acknowledged) : undefined);
        if (problem) throw new Error(problem);
        result.latencyPeaks[scenario] = peak.achieved;
        log(`${row.id} latency client's peak ${scenario}: ${peak.achieved.toFixed(0)} msg/s`);
      } catch (error) {
        result.latency[`${scenario}@peak`] = { rate: Number.NaN, error: (error as Error).message };
      }
    }
    for (const load of latencyLoads) {
      for (const { row, server, result } of contenders) {
        const peak = result.latencyPeaks[scenario];
        const key = `${scenario}@${load}`;
        if (peak === undefined || !Number.isFinite(peak)) continue;
        const cell: LatencyCell = { rate: load * peak };
        result.latency[key] = cell;
        const stored = row.storedFiles?.(server);
        emptyDir(stored);
        const before = deliveredSoFar(row, server);
        try {
          cell.result = await latencyRun(server.port, {
            rate: cell.rate,
            seconds: latencySeconds,
            connections,
            payload: row.payload,
          });
        } catch (error) {
          cell.error = (error as Error).message;
        }
        const done = cell.result;
        // Warm-up transactions count too: everything acknowledged must be stored or delivered.
        if (done && before !== undefined) cell.error = await awaitDelivered(row, server, before, done.acknowledged);
        emptyDir(stored);
        log(
          `${row.id} latency ${scenario} at ${load * 100}% (${cell.rate.toFixed(0)} msg/s): ${
            done
              ? `p50 ${done.p50.toFixed(1)} ms, p99 ${done.p99.toFixed(1)} ms, ${done.achieved.toFixed(0)} msg/s${done.failed ? `, ${done.failed} failed: ${done.firstError}` : ""}`
              : cell.error
          }`,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A large message: bytes per second and the server's peak RSS growth while it received it.

interface LargeResult {
  label: string;
  unavailable?: string;
  error?: string;
  bytesPerSecond: number;
  growth: number[];
}

async function measureLarge(
  label: string,
  start: () => Promise<StartResult>,
  stored?: (s: RunningServer) => string | undefined,
): Promise<LargeResult> {
  const result: LargeResult = { label, bytesPerSecond: Number.NaN, growth: [] };
  log(`${label}: ${largeMb} MB messages`);
  const server = await start();
  if ("unavailable" in server) return { ...result, unavailable: server.unavailable };
  const rates: number[] = [];
  try {
    const warm = await smtpSource(server.port, scenarios[0]!, 20, plain);
    if (warm.error) return { ...result, error: warm.error };
    for (let index = 0; index < 3; index++) {
      emptyDir(stored?.(server));
      // As memory.ts: a full collection first, so the baseline is what the server really holds.
      const baseline = server.gc ? await server.gc() : rss(server.pid);
      resetPeak(server.pid);
      const run = await smtpSource(server.port, { id: "large", label: "large", sessions: 1, reuse: false }, 1, {
        length: largeMb * 1024 * 1024,
      });
      if (run.error) return { ...result, error: run.error };
      result.growth.push(peakRss(server.pid) - baseline);
      rates.push((largeMb * 1024 * 1024) / run.seconds);
    }
    emptyDir(stored?.(server));
  } finally {
    await server.stop();
  }
  result.bytesPerSecond = median(rates);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Idle sessions: RSS with many sessions open after EHLO.

interface IdleResult {
  label: string;
  unavailable?: string;
  error?: string;
  baseline: number;
  withSessions: number;
  peak: number;
  open: number;
}

async function measureIdle(label: string, start: () => Promise<StartResult>): Promise<IdleResult> {
  const result: IdleResult = { label, baseline: Number.NaN, withSessions: Number.NaN, peak: Number.NaN, open: 0 };
  log(`${label}: ${idleSessions} idle sessions`);
  const server = await start();
  if ("unavailable" in server) return { ...result, unavailable: server.unavailable };
  try {
    const warm = await smtpSource(server.port, scenarios[0]!, 100, plain);
    if (warm.error) return { ...result, error: warm.error };
    result.baseline = server.gc ? await server.gc() : rss(server.pid);
    resetPeak(server.pid);
    const client = spawnWithFdLimit(
      process.execPath,
      [fileURLToPath(new URL("./compare/idle-client.ts", import.meta.url)), String(server.port), String(idleSessions)],
      { ipc: true },
    );
    const opened = await new Promise<{ open: number; failed: number }>((resolve, reject) => {
      client.once("message", (message: { open: number; failed: number }) => resolve(message));
      client.once("exit", () => reject(new Error("idle client exited early")));
    });
    result.open = opened.open;
    await new Promise((r) => setTimeout(r, 1000));
    result.withSessions = rss(server.pid);
    result.peak = peakRss(server.pid);
    if (opened.failed > 0) result.error = `${opened.failed} sessions failed to open`;
    client.send({ type: "close" });
    await exited(client, 10_000);
  } finally {
    await server.stop();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Run everything, then report.

const selected = rows.filter((row) => !onlyRows || onlyRows.includes(row.id));
// Latency runs on the servers the throughput part starts (BENCH_PARTS=latency alone skips its runs).
const results: RowResult[] = parts.has("throughput") || parts.has("latency") ? await measureThroughput(selected) : [];

const rowById = (id: string) => rows.find((row) => row.id === id)!;
const large: LargeResult[] = [];
if (parts.has("large")) {
  const maildirRow = rowById("postern-maildir");
  large.push(await measureLarge("Postern → Maildir (fsync)", maildirRow.start, maildirRow.storedFiles));
  large.push(await measureLarge("Postern, accept and discard", rowById("postern").start));
  large.push(await measureLarge("bare smtp-server, delay 0", rowById("bare").start));
  large.push(await measureLarge(`Haraka ${haraka.version}, discard (spool_after 256 KB)`, rowById("haraka").start));
}
const idle: IdleResult[] = [];
if (parts.has("idle")) {
  idle.push(await measureIdle("Postern, accept and discard", rowById("postern").start));
  idle.push(await measureIdle("bare smtp-server, delay 0", rowById("bare").start));
  idle.push(await measureIdle(`Haraka ${haraka.version}`, rowById("haraka").start));
}
await dns.close();
await rm(work, { recursive: true, force: true });
const loadAfter = loadavg();

const cellText = (result: RowResult, scenario: Scenario) => {
  if (result.unavailable) return "n/a";
  const cell = result.cells[scenario.id];
  if (!cell) return "-";
  if (cell.error) return "failed";
  return cell.median.toFixed(0);
};
const throughputTable = table(
  ["server", "greeting delay", ...scenarios.map((scenario) => scenario.label), "peak RSS"],
  results.flatMap((result) => {
    const main = [
      result.row.label,
      result.row.delay,
      ...scenarios.map((scenario) => cellText(result, scenario)),
      result.unavailable ? "n/a" : mb(result.peakRss),
    ];
    if (!result.row.waitsForDelivery || result.unavailable) return [main];
    const delivered = [
      `${result.row.label.replace(/, at 250$/, "")}, ${result.row.deliveredLabel ?? "until in Maildir"}`,
      result.row.delay,
      ...scenarios.map((scenario) => {
        const cell = result.cells[scenario.id];
        return cell && !cell.error ? median(cell.deliveredRates).toFixed(0) : "-";
      }),
      "",
    ];
    return [main, delivered];
  }),
  (column) => column >= 2,
);

const cpuTable = table(
  ["server", ...scenarios.map((scenario) => scenario.label)],
  results
    .filter((result) => !result.unavailable)
    .map((result) => [
      result.row.label,
      ...scenarios.map((scenario) => {
        const cell = result.cells[scenario.id];
        return cell && !cell.error ? median(cell.cpuPerMessage).toFixed(3) : "-";
      }),
    ]),
  (column) => column >= 1,
);

const databaseCpuTable = table(
  ["server", ...scenarios.map((scenario) => scenario.label)],
  results
    .filter((result) => !result.unavailable && result.row.usesPostgres)
    .map((result) => [
      result.row.label,
      ...scenarios.map((scenario) => {
        const cell = result.cells[scenario.id];
        return cell && !cell.error && cell.databaseCpuPerMessage.length > 0
          ? median(cell.databaseCpuPerMessage).toFixed(3)
          : "-";
      }),
    ]),
  (column) => column >= 1,
);

const cpuIdleTable = table(
  ["server", ...scenarios.map((scenario) => scenario.label)],
  results
    .filter((result) => !result.unavailable)
    .map((result) => [
      result.row.label,
      ...scenarios.map((scenario) => {
        const cell = result.cells[scenario.id];
        return cell && !cell.error && cell.idle.length > 0 ? `${(median(cell.idle) * 100).toFixed(0)}%` : "-";
      }),
    ]),
  (column) => column >= 1,
);

const latencyColumns = latencyScenarios.flatMap(({ scenario }) => [
  { key: `${scenario}@peak`, label: `${scenario === "s20" ? "1 msg/conn" : "reuse (20 conn)"}: peak` },
  ...latencyLoads.map((load) => ({
    key: `${scenario}@${load}`,
    label: `${scenario === "s20" ? "1 msg/conn" : "reuse"} at ${load * 100}%`,
  })),
]);
const latencyTable = table(
  ["server", ...latencyColumns.map((column) => column.label)],
  results
    .filter((result) => !result.unavailable && Object.keys(result.latency).length > 0)
    .map((result) => [
      result.row.label,
      ...latencyColumns.map(({ key }) => {
        if (key.endsWith("@peak")) {
          const peak = result.latencyPeaks[key.slice(0, -5)];
          return peak === undefined ? (result.latency[key] ? "failed" : "-") : `${peak.toFixed(0)} msg/s`;
        }
        const cell = result.latency[key];
        if (!cell) return "-";
        if (cell.error || !cell.result) return "failed";
        const { p50, p99, achieved, failed } = cell.result;
        return `${p50.toFixed(1)} / ${p99.toFixed(1)} (${achieved.toFixed(0)}${failed ? `, ${failed} failed` : ""})`;
      }),
    ]),
  (column) => column >= 1,
);

interface Ratio {
  label: string;
  numerator: string;
  denominator: string;
  target: number;
  /** Compare the "until delivered" rates instead of the rates at 250. */
  delivered?: boolean;
}
const ratios: Ratio[] = [
  { label: "Postern discard / Haraka discard", numerator: "postern", denominator: "haraka", target: 2 },
  {
    label: "Postern discard / bare smtp-server (both delay 0)",
    numerator: "postern",
    denominator: "bare",
    target: 0.85,
  },
  { label: "Postern discard / smtp-sink", numerator: "postern", denominator: "sink", target: 0 },
  {
    label: "Postern Maildir / Postfix Maildir (at 250)",
    numerator: "postern-maildir",
    denominator: "postfix",
    target: 2,
  },
  { label: "Postern full pipeline / Haraka discard", numerator: "pipeline", denominator: "haraka", target: 1 },
  {
    label: "Postern full pipeline / Haraka spf + dkim → Maildir",
    numerator: "pipeline",
    denominator: "haraka-pipeline",
    target: 2,
  },
  {
    label: "Postern spf + dkim → Maildir / Haraka spf + dkim → Maildir (same checks)",
    numerator: "pipeline-same",
    denominator: "haraka-pipeline",
    target: 2,
  },
  {
    label: "Postern relay (fs queue) / Postfix relay, at 250",
    numerator: "postern-relay-fs",
    denominator: "postfix-relay",
    target: 1.5,
  },
  {
    label: "Postern relay (PostgreSQL queue) / Postfix relay, at 250",
    numerator: "postern-relay-pg",
    denominator: "postfix-relay",
    target: 1.5,
  },
  {
    label: "Postern relay (fs queue) / Postfix relay, delivered",
    numerator: "postern-relay-fs",
    denominator: "postfix-relay",
    target: 1.5,
    delivered: true,
  },
  {
    label: "Postern relay (PostgreSQL queue) / Postfix relay, delivered",
    numerator: "postern-relay-pg",
    denominator: "postfix-relay",
    target: 1.5,
    delivered: true,
  },
  {
    label: "Postern relay (fs queue, 16 pool threads) / Postfix relay, at 250",
    numerator: "postern-relay-fs-pool16",
    denominator: "postfix-relay",
    target: 1.5,
  },
  {
    label: "Postern relay (fs queue, 16 pool threads) / Postfix relay, delivered",
    numerator: "postern-relay-fs-pool16",
    denominator: "postfix-relay",
    target: 1.5,
    delivered: true,
  },
  {
    label: "Postern Maildir, 16 pool threads / 4",
    numerator: "postern-maildir-pool16",
    denominator: "postern-maildir",
    target: 0,
  },
  {
    label: "Postern Maildir, 16 pool threads / Postfix (at 250)",
    numerator: "postern-maildir-pool16",
    denominator: "postfix",
    target: 2,
  },
  {
    label: "postern start, discard: 2 workers / 1",
    numerator: "start-discard-w2",
    denominator: "start-discard-w1",
    target: 0,
  },
  {
    label: "postern start → Maildir: 2 workers / 1",
    numerator: "start-maildir-w2",
    denominator: "start-maildir-w1",
    target: 0,
  },
  {
    label: "Postern Maildir / earlier store (same run)",
    numerator: "postern-maildir",
    denominator: "postern-maildir-before",
    target: 0,
  },
];
const resultById = (id: string) => results.find((result) => result.row.id === id);
// Only ratios whose two rows ran (BENCH_ROWS may pick a few).
const ratioRows = ratios
  .filter((ratio) => resultById(ratio.numerator) && resultById(ratio.denominator))
  .map((ratio) => {
    const top = resultById(ratio.numerator);
    const bottom = resultById(ratio.denominator);
    const values = scenarios.map((scenario) => {
      const a = top?.cells[scenario.id];
      const b = bottom?.cells[scenario.id];
      if (top?.unavailable || bottom?.unavailable) return undefined;
      if (!a || !b || a.error || b.error) return undefined;
      return ratio.delivered ? median(a.deliveredRates) / median(b.deliveredRates) : a.median / b.median;
    });
    const known = values.filter((value): value is number => value !== undefined);
    const verdict =
      ratio.target === 0
        ? ""
        : top?.unavailable
          ? `n/a: ${top.unavailable}`
          : known.length < scenarios.length
            ? "incomplete"
            : known.every((value) => value >= ratio.target)
              ? "met"
              : "MISSED";
    return [
      ratio.label,
      ratio.target === 0 ? "-" : `≥ ${ratio.target}`,
      ...values.map((value) => (value === undefined ? "-" : `${value.toFixed(2)}×`)),
      verdict,
    ];
  });
const ratioTable = table(
  ["ratio", "target", ...scenarios.map((scenario) => scenario.label), "verdict"],
  ratioRows,
  (column) => column >= 2 && column <= 1 + scenarios.length,
);

const largeTable = table(
  ["server", "MB/s (median of 3)", "peak RSS growth (max of 3)", "target"],
  large.map((entry, index) => [
    entry.label,
    entry.unavailable ? "n/a" : entry.error ? "failed" : (entry.bytesPerSecond / 1024 / 1024).toFixed(1),
    entry.unavailable || entry.error ? "-" : mb(Math.max(...entry.growth)),
    index === 0 && !entry.error && !entry.unavailable
      ? `< 32 MB: ${Math.max(...entry.growth) < 32 * 1024 * 1024 ? "met" : "MISSED"}`
      : "",
  ]),
  (column) => column === 1 || column === 2,
);

const idleTable = table(
  ["server", "sessions open", "RSS before", "RSS with sessions", "peak RSS", "per session", "target"],
  idle.map((entry, index) => [
    entry.label,
    String(entry.open),
    mb(entry.baseline),
    mb(entry.withSessions),
    mb(entry.peak),
    entry.open > 0 ? `${((entry.withSessions - entry.baseline) / entry.open / 1024).toFixed(1)} KB` : "-",
    index === 0 && !entry.error
      ? `< 300 MB: ${entry.peak < 300 * 1024 * 1024 && entry.open === idleSessions ? "met" : "MISSED"}`
      : (entry.error ?? ""),
  ]),
  (column) => column >= 1 && column <= 5,
);

const errors = [
  ...results.flatMap((result) =>
    Object.entries(result.cells)
      .filter(([, cell]) => cell.error)
      .map(([scenario, cell]) => `${result.row.id} ${scenario}: ${cell.error}`),
  ),
  ...results.filter((result) => result.unavailable).map((result) => `${result.row.id}: n/a: ${result.unavailable}`),
  ...results.flatMap((result) =>
    Object.entries(result.latency)
      .filter(([, cell]) => cell.error || cell.result?.failed)
      .map(
        ([key, cell]) =>
          `${result.row.id} latency ${key}: ${cell.error ?? `${cell.result!.failed} failed: ${cell.result!.firstError}`}`,
      ),
  ),
  ...large.filter((entry) => entry.error).map((entry) => `${entry.label} (large): ${entry.error}`),
  ...idle.filter((entry) => entry.error).map((entry) => `${entry.label} (idle): ${entry.error}`),
];

const fmtLoad = (load: number[]) => load.map((value) => value.toFixed(2)).join(" ");
const report = [
  `Postern benchmark, ${new Date().toISOString()}`,
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}; load average before ${fmtLoad(loadBefore)}, after ${fmtLoad(loadAfter)}`,
  `Node ${process.version}; Haraka ${haraka.version}; Postfix ${postfixVersion}; client smtp-source (Postfix ${postfixVersion})`,
  `message: ${messageBytes / 1024} KB (smtp-source -l ${messageBytes}; the pipeline rows send a DKIM-signed 10 KB message with -F)`,
  `each cell: median msg/s of ${runs} runs of ~${secondsPerRun} s after a warm-up run, servers interleaved run by run; log level warn everywhere`,
  "peak RSS: the process's VmHWM over all its runs (Postfix: the peak of the summed PSS of its processes, sampled)",
  "",
  throughputTable,
  "",
  ratioTable,
  "",
  "server CPU time per message (ms, user + system of all its processes; median of the runs)",
  cpuTable,
  ...(results.some((result) => !result.unavailable && result.row.usesPostgres)
    ? [
        "",
        "PostgreSQL's CPU time per message in the rows that queue there (ms, user + system of every postgres process on the machine; not in the table above; median of the runs)",
        databaseCpuTable,
      ]
    : []),
  "",
  "machine CPU idle during the runs (both cores; the client, the server and anything else running share them; median)",
  cpuIdleTable,
  "",
  ...(parts.has("latency")
    ? [
        `transaction latency, ms, p50 / p99 (achieved msg/s): open-loop Poisson arrivals at 50% and 90% of the peak this client reaches against the row (closed loop, 20 sessions, first column), ${latencySeconds} s each after 0.5 s of warm-up; from arrival to the 250 after the final dot (1 msg/conn: connect, greeting, HELO, MAIL, RCPT, DATA; reuse: the wait for a free connection)`,
        latencyTable,
        "",
      ]
    : []),
  `${largeMb} MB message (smtp-source -l, one session), 3 runs each`,
  largeTable,
  "",
  `${idleSessions} idle sessions (connected, EHLO answered, then silent)`,
  idleTable,
  ...(errors.length > 0 ? ["", "problems:", ...errors.map((error) => `  ${error}`)] : []),
  "",
  `total time ${((Date.now() - started) / 1000).toFixed(0)} s`,
].join("\n");

console.log(report);
const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));
await mkdir(resultsDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
await writeFile(join(resultsDir, `compare-${stamp}.txt`), `${report}\n`);
await writeFile(
  join(resultsDir, `compare-${stamp}.json`),
  `${JSON.stringify({ loadBefore, loadAfter, results: results.map(({ row, ...rest }) => ({ id: row.id, label: row.label, delay: row.delay, ...rest })), large, idle }, null, 2)}\n`,
);
log(`written to tooling/bench/results/compare-${stamp}.txt`);
