// Core's own cost on the discard path, before and after a change, in one run: the same discard
// server (tooling/bench/compare/postern-server.ts) started from two source trees — this one and a
// git worktree of an earlier commit — driven alternately by Postfix's smtp-source, with the
// server's CPU time read from /proc. Prints CPU per message (median of the rounds) for both.
//   node --conditions=dev-source tooling/bench/core-cost.ts <before-tree> [<after-tree>]
// A tree is a checkout with its node_modules installed, e.g.
//   git worktree add /tmp/postern-before <commit> && (cd /tmp/postern-before && pnpm install --offline)
// The before-tree "bare" is the bare smtp-server of compare/bare-server.ts (greeting delay 0, an
// onData that drains the stream) from the after tree: then "change" is core's own cost, the
// figure of the target "core adds ≤ 0.1 ms CPU per message over smtp-server".
// The tree "start" is the real `postern start --workers 1` (compare/postern-start.ts, discard or
// maildir as BENCH_MODE says) from the after tree: the server an operator runs, beside the bench's
// own postern-server.ts (e.g. `core-cost.ts bare start`, or `core-cost.ts start` against this tree).
// Knobs: BENCH_ROUNDS (7), BENCH_MESSAGES per round (4000), BENCH_SESSIONS (20), BENCH_REUSE=1
// (smtp-source -d: many messages per connection), BENCH_MODE (discard).
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { reverseName, startFakeDns } from "@postern/testing";
import { startPosternCommand } from "./compare/postern-start.ts";
import { median } from "./compare/report.ts";
import { smtpSource } from "./compare/smtp-source.ts";

const here = dirname(fileURLToPath(import.meta.url));
/** "bare" and "start" name servers, not trees; anything else is a checkout's path. */
const tree = (arg: string) => (arg === "bare" || arg === "start" ? arg : resolve(arg));
const trees = {
  before: tree(process.argv[2] ?? ""),
  after: tree(process.argv[3] ?? join(here, "../..")),
};
const thisTree = resolve(join(here, "../.."));
if (!process.argv[2]) {
  process.stderr.write("usage: core-cost.ts <before-tree> [<after-tree>]\n");
  process.exit(2);
}
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const messages = Number(process.env.BENCH_MESSAGES ?? 4000);
const sessions = Number(process.env.BENCH_SESSIONS ?? 20);
const reuse = process.env.BENCH_REUSE === "1";
const mode = process.env.BENCH_MODE ?? "discard";
const ticksPerSecond = 100; // USER_HZ on Linux
// As compare.ts: the server's DNS (its reverse lookup of every client) answered by a fake zone on
// loopback, so the lookups succeed and are cached, as with a working resolver.
const dns = await startFakeDns({ [reverseName("127.0.0.1")]: { PTR: ["localhost"] } });

interface Running {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** User and system CPU seconds of the process (utime, stime). */
function cpuSeconds(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / ticksPerSecond, system: Number(fields[12]) / ticksPerSecond };
}

async function start(tree: string): Promise<Running> {
  if (tree === "start") {
    if (mode !== "discard" && mode !== "maildir") throw new Error(`postern start runs discard or maildir, not ${mode}`);
    const started = await startPosternCommand({ mode, workers: 1, dnsServer: dns.servers[0]! });
    if ("unavailable" in started) throw new Error(started.unavailable);
    return { pid: started.pid, port: started.port, stop: () => started.stop() };
  }
  const [cwd, script, args] =
    tree === "bare"
      ? [thisTree, join(thisTree, "tooling/bench/compare/bare-server.ts"), ["0"]]
      : [tree, join(tree, "tooling/bench/compare/postern-server.ts"), [mode, dns.servers[0]!]];
  const child = spawn(process.execPath, ["--conditions=dev-source", script, ...args], {
    cwd,
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const port = await new Promise<number>((resolvePort, reject) => {
    child.once("exit", (code) => reject(new Error(`server from ${tree} exited (${code})`)));
    child.on("message", (message: { type: string; port?: number; reason?: string }) => {
      if (message.type === "ready") resolvePort(message.port!);
      if (message.type === "unavailable") reject(new Error(message.reason));
    });
  });
  return { pid: child.pid!, port, stop: () => stop(child) };
}

async function stop(child: ChildProcess): Promise<void> {
  child.removeAllListeners("exit");
  const exited = new Promise((done) => child.once("exit", done));
  child.send({ type: "stop" });
  await exited;
}

interface Round {
  cpuUs: number;
  userUs: number;
  systemUs: number;
  rate: number;
}

async function round(tree: string): Promise<Round> {
  const running = await start(tree);
  try {
    // A warm-up: the first messages pay for module loading and the JIT.
    await smtpSource(running.port, { id: "warm", label: "", sessions, reuse }, 500, { length: 10 * 1024 });
    const before = cpuSeconds(running.pid);
    const run = await smtpSource(running.port, { id: "run", label: "", sessions, reuse }, messages, {
      length: 10 * 1024,
    });
    if (run.error) throw new Error(`smtp-source: ${run.error}`);
    const after = cpuSeconds(running.pid);
    const perMessage = (seconds: number) => (seconds / messages) * 1e6;
    const userUs = perMessage(after.user - before.user);
    const systemUs = perMessage(after.system - before.system);
    return { cpuUs: userUs + systemUs, userUs, systemUs, rate: messages / run.seconds };
  } finally {
    await running.stop();
  }
}

const results: Record<"before" | "after", Round[]> = { before: [], after: [] };
const loads: number[] = [];
for (let index = 0; index < rounds; index++) {
  // Alternate which goes first, so a drift in machine load falls on both.
  const order = index % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const);
  for (const which of order) {
    loads.push(loadavg()[0]!);
    results[which].push(await round(trees[which]));
    process.stderr.write(
      `[core-cost] round ${index + 1} ${which}: ${results[which].at(-1)!.cpuUs.toFixed(0)} µs/msg\n`,
    );
  }
}
await dns.close();
const summary = (which: "before" | "after") => ({
  cpu: median(results[which].map((result) => result.cpuUs)),
  user: median(results[which].map((result) => result.userUs)),
  system: median(results[which].map((result) => result.systemUs)),
  rate: median(results[which].map((result) => result.rate)),
});
const before = summary("before");
const after = summary("after");
process.stdout.write(
  [
    `core cost, ${mode} path, ${messages} × 10 KB messages per round, ${sessions} sessions${reuse ? ", reused connections" : ", one message per connection"}, ${rounds} rounds, load ${median(loads).toFixed(2)} (median)`,
    `  before ${trees.before}: ${before.cpu.toFixed(0)} µs CPU/msg (user ${before.user.toFixed(0)}, system ${before.system.toFixed(0)}), ${before.rate.toFixed(0)} msg/s`,
    `  after  ${trees.after}: ${after.cpu.toFixed(0)} µs CPU/msg (user ${after.user.toFixed(0)}, system ${after.system.toFixed(0)}), ${after.rate.toFixed(0)} msg/s`,
    `  change: ${(after.cpu - before.cpu).toFixed(0)} µs CPU/msg (${(((after.cpu - before.cpu) / before.cpu) * 100).toFixed(1)}%)`,
    "",
  ].join("\n"),
);
