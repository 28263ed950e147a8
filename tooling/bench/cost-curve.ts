// The cost curve: how Postern's throughput and CPU per message move with the number of sessions
// and the size of the message, against a bare smtp-server doing the least work an SMTP server can
// (the reference for what is "explained" by SMTP and the bytes themselves).
//   node --conditions=dev-source tooling/bench/cost-curve.ts
// Sessions 1, 20, 200, 1,000 (smtp-source -s, one message per connection) × messages of 1 KB,
// 10 KB, 100 KB, 1 MB and 30 MB (smtp-source -l). Every server runs in its own process, started
// once; per cell each gets a warm-up run that sizes its runs to ~BENCH_SECONDS, then
// BENCH_CURVE_RUNS runs, interleaved server by server; a cell is the median. A cell whose one
// run would carry more than BENCH_CURVE_MAX_GB (3) is left out: 200 or 1,000 sessions of 30 MB
// each are 6 or 30 GB a run. Maildir rows check that every acknowledged message is stored.
// Knobs: BENCH_CURVE_MODES (bare,discard,maildir), BENCH_CURVE_SESSIONS, BENCH_CURVE_SIZES (bytes),
// BENCH_CURVE_RUNS (3), BENCH_SECONDS (2), BENCH_MAX_LOAD (wait for a quieter machine first).
import { existsSync, mkdirSync, readdirSync, renameSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { reverseName, startFakeDns } from "@postern/testing";
import { type RunningServer, startNodeServer } from "./compare/launch.ts";
import { cpuSeconds, peakRss } from "./compare/proc.ts";
import { mb, median, table } from "./compare/report.ts";
import { smtpSource } from "./compare/smtp-source.ts";

const log = (line: string) => process.stderr.write(`[curve] ${line}\n`);
const list = (value: string | undefined, fallback: number[]) =>
  value ? value.split(",").filter(Boolean).map(Number) : fallback;
const modes = (process.env.BENCH_CURVE_MODES ?? "bare,discard,maildir").split(",").filter(Boolean);
const sessionCounts = list(process.env.BENCH_CURVE_SESSIONS, [1, 20, 200, 1000]);
const sizes = list(process.env.BENCH_CURVE_SIZES, [1024, 10 * 1024, 100 * 1024, 1024 * 1024, 30 * 1024 * 1024]);
const runs = Number(process.env.BENCH_CURVE_RUNS ?? 3);
const secondsPerRun = Number(process.env.BENCH_SECONDS ?? 2);
const maxBytesPerRun = Number(process.env.BENCH_CURVE_MAX_GB ?? 3) * 1024 ** 3;

const maxLoad = process.env.BENCH_MAX_LOAD ? Number(process.env.BENCH_MAX_LOAD) : undefined;
if (maxLoad !== undefined) {
  const until = Date.now() + 15 * 60_000;
  while (loadavg()[0]! >= maxLoad && Date.now() < until) {
    log(`load average ${loadavg()[0]!.toFixed(2)} ≥ ${maxLoad}: waiting`);
    await new Promise((resolve) => setTimeout(resolve, 15_000));
  }
}
const loadBefore = loadavg();
const started = Date.now();

const labels: Record<string, string> = {
  bare: "bare smtp-server (drains the stream)",
  discard: "Postern, accept and discard",
  maildir: "Postern → Maildir (fsync)",
};
const dns = await startFakeDns({
  "example.org": { TXT: ["v=spf1 ip4:127.0.0.0/8 -all"] },
  [reverseName("127.0.0.1")]: { PTR: ["localhost"] },
});

interface Server {
  mode: string;
  running: RunningServer;
  /** new/ of the one Maildir the maildir mode stores into. */
  stored: string | undefined;
}
const servers: Server[] = [];
for (const mode of modes) {
  const running =
    mode === "bare"
      ? await startNodeServer("./bare-server.ts", ["0"])
      : await startNodeServer("./postern-server.ts", [mode, dns.servers[0]!]);
  if ("unavailable" in running) throw new Error(`${mode}: ${running.unavailable}`);
  const stored =
    mode === "maildir" && running.maildirRoot ? join(running.maildirRoot, "bench.test", "user", "new") : undefined;
  servers.push({ mode, running, stored });
}

// As compare.ts: a run starts with new/ moved aside, not emptied (mass deletes skew ext4's inode
// allocation on this machine); the moved-aside folders go when the server stops.
let rotations = 0;
const countStored = (dir: string | undefined) => (dir && existsSync(dir) ? readdirSync(dir).length : 0);
function setAside(dir: string | undefined): void {
  if (!dir || countStored(dir) === 0) return;
  renameSync(dir, `${dir}.run-${++rotations}`);
  mkdirSync(dir, { mode: 0o700 });
}

interface Cell {
  rates: number[];
  cpuPerMessage: number[];
  error?: string;
  skipped?: string;
}
const cells = new Map<string, Cell>();
const key = (mode: string, sessions: number, size: number) => `${mode}/${sessions}/${size}`;

async function run(server: Server, sessions: number, size: number, messages: number) {
  setAside(server.stored);
  const cpuBefore = cpuSeconds(server.running.pid);
  const result = await smtpSource(
    server.running.port,
    { id: "curve", label: "curve", sessions, reuse: false },
    messages,
    { length: size },
  );
  const cpu = cpuSeconds(server.running.pid) - cpuBefore;
  if (!result.error && server.stored) {
    const count = countStored(server.stored);
    if (count < messages) result.error = `only ${count} of ${messages} acknowledged messages were stored`;
  }
  return { ...result, cpuPerMessage: (cpu * 1000) / messages };
}

try {
  for (const size of sizes) {
    for (const sessions of sessionCounts) {
      const planned = new Map<Server, number>();
      for (const server of servers) {
        const cell: Cell = { rates: [], cpuPerMessage: [] };
        cells.set(key(server.mode, sessions, size), cell);
        if (sessions * size > maxBytesPerRun) {
          cell.skipped = `${((sessions * size) / 1024 ** 3).toFixed(0)} GB a run`;
          continue;
        }
        // Warm-up (at most ~1 GB, at least one message per session), which also sizes the runs.
        const warmup = Math.max(sessions, Math.min(sessions * 2, Math.floor(1024 ** 3 / size)));
        const warm = await run(server, sessions, size, warmup);
        if (warm.error) {
          cell.error = warm.error;
          log(`${server.mode} ${sessions} × ${size}: FAILED: ${warm.error}`);
          continue;
        }
        const rate = warm.messages / warm.seconds;
        const byTime = Math.round(rate * secondsPerRun);
        const byBytes = Math.floor(maxBytesPerRun / size);
        planned.set(server, Math.max(sessions, Math.min(50_000, byTime, byBytes)));
      }
      for (let index = 0; index < runs; index++) {
        for (const [server, messages] of planned) {
          const cell = cells.get(key(server.mode, sessions, size))!;
          if (cell.error) continue;
          const result = await run(server, sessions, size, messages);
          if (result.error) {
            cell.error = result.error;
            log(`${server.mode} ${sessions} × ${size}: FAILED: ${result.error}`);
            continue;
          }
          cell.rates.push(result.messages / result.seconds);
          cell.cpuPerMessage.push(result.cpuPerMessage);
        }
      }
      for (const server of planned.keys()) {
        const cell = cells.get(key(server.mode, sessions, size))!;
        if (!cell.error) {
          log(
            `${server.mode} ${sessions} sessions × ${sizeLabel(size)}: ${median(cell.rates).toFixed(0)} msg/s, ${median(cell.cpuPerMessage).toFixed(3)} ms CPU per message`,
          );
        }
      }
    }
  }
} finally {
  for (const server of servers) {
    (server as Server & { peak?: number }).peak = peakRss(server.running.pid);
    await server.running.stop();
  }
  await dns.close();
}

function sizeLabel(size: number): string {
  return size >= 1024 * 1024 ? `${size / 1024 / 1024} MB` : `${size / 1024} KB`;
}

const cellOf = (mode: string, sessions: number, size: number) => cells.get(key(mode, sessions, size));
const show = (cell: Cell | undefined, value: (cell: Cell) => string) =>
  !cell ? "-" : cell.skipped ? "n/a" : cell.error ? "failed" : value(cell);
const cpuOf = (cell: Cell) => median(cell.cpuPerMessage);

const sections: string[] = [];
for (const mode of modes) {
  sections.push(
    `${labels[mode] ?? mode}: msg/s, MB/s`,
    table(
      ["sessions", ...sizes.map(sizeLabel)],
      sessionCounts.map((sessions) => [
        String(sessions),
        ...sizes.map((size) =>
          show(cellOf(mode, sessions, size), (cell) => {
            const rate = median(cell.rates);
            return `${rate.toFixed(0)} msg/s, ${((rate * size) / 1024 / 1024).toFixed(1)} MB/s`;
          }),
        ),
      ]),
      (column) => column >= 1,
    ),
    "",
    `${labels[mode] ?? mode}: server CPU per message, ms (from 100 KB on also per MB of message)`,
    table(
      ["sessions", ...sizes.map(sizeLabel)],
      sessionCounts.map((sessions) => [
        String(sessions),
        ...sizes.map((size) =>
          show(cellOf(mode, sessions, size), (cell) => {
            const cpu = cpuOf(cell);
            return size >= 100 * 1024
              ? `${cpu.toFixed(3)} (${(cpu / (size / 1024 / 1024)).toFixed(1)}/MB)`
              : cpu.toFixed(3);
          }),
        ),
      ]),
      (column) => column >= 1,
    ),
    "",
  );
}
// What each layer adds per message: Postern over smtp-server (core), the store over discard.
for (const [top, bottom, what] of [
  ["discard", "bare", "core's own cost: Postern discard − bare smtp-server"],
  ["maildir", "discard", "the store's cost: Postern → Maildir − Postern discard"],
] as const) {
  if (!modes.includes(top) || !modes.includes(bottom)) continue;
  sections.push(
    `${what}, CPU ms per message`,
    table(
      ["sessions", ...sizes.map(sizeLabel)],
      sessionCounts.map((sessions) => [
        String(sessions),
        ...sizes.map((size) => {
          const a = cellOf(top, sessions, size);
          const b = cellOf(bottom, sessions, size);
          if (!a || !b || a.skipped || b.skipped) return "n/a";
          if (a.error || b.error) return "failed";
          return (cpuOf(a) - cpuOf(b)).toFixed(3);
        }),
      ]),
      (column) => column >= 1,
    ),
    "",
  );
}
const problems = [...cells].filter(([, cell]) => cell.error).map(([name, cell]) => `  ${name}: ${cell.error}`);
const fmtLoad = (load: number[]) => load.map((value) => value.toFixed(2)).join(" ");
const report = [
  `Postern cost curve, ${new Date().toISOString()}`,
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}; load average before ${fmtLoad(loadBefore)}, after ${fmtLoad(loadavg())}; Node ${process.version}`,
  `client: smtp-source -s <sessions> -l <size>, one message per connection; each cell the median of ${runs} runs of ~${secondsPerRun} s after a warm-up, servers interleaved; peak RSS: ${servers.map((server) => `${server.mode} ${mb((server as Server & { peak?: number }).peak ?? Number.NaN)}`).join(", ")}`,
  "",
  ...sections,
  ...(problems.length > 0 ? ["problems:", ...problems, ""] : []),
  `total time ${((Date.now() - started) / 1000).toFixed(0)} s`,
].join("\n");
console.log(report);
const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));
await mkdir(resultsDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
await writeFile(join(resultsDir, `cost-curve-${stamp}.txt`), `${report}\n`);
await writeFile(
  join(resultsDir, `cost-curve-${stamp}.json`),
  `${JSON.stringify({ loadBefore, modes, sessionCounts, sizes, cells: Object.fromEntries(cells) }, null, 2)}\n`,
);
log(`written to tooling/bench/results/cost-curve-${stamp}.txt`);
