// System calls per message of a compare.ts server, counted with strace -f -c over a run of
// smtp-source: where a store's per-delivery file system work goes, in calls rather than time
// (strace slows every call, so its timings mean little; the counts are exact).
//   node --conditions=dev-source tooling/bench/syscalls.ts [modes=discard,maildir] [messages=2000] [smtp-source flags]
// (modes: discard, maildir, pipeline, relay-fs, relay-pg, and bare — the bare smtp-server; a mode
// with "@<path of another checkout>", e.g. relay-fs@/tmp/before, runs that tree's server instead)
//   e.g. syscalls.ts discard,maildir 2000 -s 20 -d
// Prints, per mode, the calls per message of every system call, and for each mode after the first
// the difference to the first (e.g. maildir − discard = what the store adds per message).
// BENCH_MAILDIR_MODULE (see compare/postern-server.ts) swaps in another store implementation.
// The relay modes get an smtp-sink of their own as the next hop, and the count waits until it has
// every message: what queueing and delivering cost per message, both.
import { spawn, spawnSync } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { reverseName, startFakeDns } from "@postern/testing";
import { exited, freePort, terminate, waitForGreeting } from "./compare/launch.ts";
import { table } from "./compare/report.ts";

const [modeList = "discard,maildir", count = "2000", ...flags] = process.argv.slice(2);
const modes = modeList.split(",").filter(Boolean);
const messages = Number(count);
const sourceFlags = flags.length > 0 ? flags : ["-s", "20"];
const warmup = 200;

if (spawnSync("strace", ["-V"]).status !== 0) throw new Error("strace is not installed (apt-get install strace)");

const dns = await startFakeDns({
  "example.org": { TXT: ["v=spf1 ip4:127.0.0.0/8 -all"] },
  [reverseName("127.0.0.1")]: { PTR: ["localhost"] },
});
const work = await mkdtemp(join(tmpdir(), "postern-bench-syscalls-"));

function smtpSource(port: number, total: number): Promise<void> {
  const child = spawn(
    "smtp-source",
    [...sourceFlags, "-m", String(total), "-l", "10240", "-f", "bench@example.org", "-t", "user@bench.test"].concat([
      "-M",
      "client.bench",
      `127.0.0.1:${port}`,
    ]),
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  return new Promise((resolve, reject) =>
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`smtp-source exit ${code}`)))),
  );
}

/** strace -c output: calls per system call name. */
function parseSummary(text: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const line of text.split("\n")) {
    // % time  seconds  usecs/call  calls  [errors]  syscall
    const fields = line.trim().split(/\s+/);
    if (fields.length < 5 || !/^\d+\.\d+$/.test(fields[0]!)) continue;
    const name = fields.at(-1)!;
    if (name === "total") continue;
    calls.set(name, Number(fields[3]));
  }
  return calls;
}

/**
 * Counts one mode: warm-up without strace attached would need attach/detach of every thread, so
 * the server runs under strace from the start and a warm-up run's counts are taken away (two
 * servers: one for `warmup` messages, one for `warmup + messages`).
 */
async function countRun(modeSpec: string, total: number): Promise<Map<string, number>> {
  // "relay-fs@/tmp/tree": the mode as another checkout's compare/postern-server.ts runs it.
  const [mode = modeSpec, tree] = modeSpec.split("@");
  const output = join(work, `${modeSpec.replace(/\W+/g, "_")}-${total}.strace`);
  // "bare": the bare smtp-server of compare.ts, the baseline of core's own cost.
  const script = tree
    ? join(tree, mode === "bare" ? "tooling/bench/compare/bare-server.ts" : "tooling/bench/compare/postern-server.ts")
    : fileURLToPath(
        new URL(mode === "bare" ? "./compare/bare-server.ts" : "./compare/postern-server.ts", import.meta.url),
      );
  const relay = mode.startsWith("relay-");
  const sinkPort = relay ? await freePort() : 0;
  const sinkLog = join(work, `${modeSpec.replace(/\W+/g, "_")}-${total}.sink`);
  const sink = relay
    ? spawn("smtp-sink", ["-c", "-u", "nobody", `127.0.0.1:${sinkPort}`, "1024"], {
        stdio: ["ignore", openSync(sinkLog, "a"), "inherit"],
      })
    : undefined;
  if (sink) await waitForGreeting(sinkPort);
  const child = spawn(
    "strace",
    [
      "-f",
      "-c",
      "-o",
      output,
      process.execPath,
      "--conditions=dev-source",
      "--expose-gc",
      script,
      ...(mode === "bare" ? ["0"] : [mode, dns.servers[0]!]),
    ],
    // The Maildir outside the server's own temp folder: its removal at the end is not counted.
    {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: {
        ...process.env,
        BENCH_MAILDIR: `${output}.maildir`,
        ...(relay
          ? { BENCH_SINK_PORT: String(sinkPort), BENCH_PG_SCHEMA: `bench_syscalls_${process.pid}_${sinkPort}` }
          : {}),
      },
    },
  );
  const ready = await new Promise<{ port: number }>((resolve, reject) => {
    child.on("message", (message: { type: string; port: number; reason?: string }) => {
      if (message.type === "ready") resolve(message);
      if (message.type === "unavailable") reject(new Error(message.reason));
    });
    child.once("exit", () => reject(new Error("server exited before it was ready")));
  });
  await smtpSource(ready.port, total);
  if (sink) {
    // smtp-sink -c writes "… mesg=N" after every message (the greeting check above is not one).
    const delivered = () =>
      Math.max(0, ...[...readFileSync(sinkLog, "latin1").matchAll(/mesg=(\d+)/g)].map((m) => Number(m[1])));
    const deadline = Date.now() + 120_000;
    while (delivered() < total && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    if (delivered() < total) process.stderr.write(`[syscalls] ${mode}: only ${delivered()} of ${total} delivered\n`);
  }
  child.send({ type: "stop" });
  if (!(await exited(child, 30_000))) child.kill("SIGKILL");
  if (sink) await terminate(sink);
  return parseSummary(await readFile(output, "utf8"));
}

const perMessage = new Map<string, Map<string, number>>();
for (const mode of modes) {
  const base = await countRun(mode, warmup);
  const full = await countRun(mode, warmup + messages);
  const calls = new Map<string, number>();
  for (const [name, n] of full) calls.set(name, (n - (base.get(name) ?? 0)) / messages);
  perMessage.set(mode, calls);
  process.stderr.write(`[syscalls] ${mode}: done\n`);
}
await dns.close();
await rm(work, { recursive: true, force: true });

const names = [...new Set([...perMessage.values()].flatMap((calls) => [...calls.keys()]))];
const first = perMessage.get(modes[0]!)!;
const rows = names
  .map((name) => {
    const values = modes.map((mode) => perMessage.get(mode)!.get(name) ?? 0);
    return { name, values };
  })
  .filter(({ values }) => values.some((value) => Math.abs(value) >= 0.05))
  .sort((a, b) => b.values.at(-1)! - a.values.at(-1)!);
const total = (mode: string) => [...perMessage.get(mode)!.values()].reduce((sum, value) => sum + value, 0);
const differences = modes.slice(1).map((mode) => `${mode} − ${modes[0]}`);
console.log(
  `system calls per message (strace -f -c), ${messages} messages of 10 KB after ${warmup} of warm-up, smtp-source ${sourceFlags.join(" ")}`,
);
console.log(
  table(
    ["syscall", ...modes, ...differences],
    [
      ...rows.map(({ name, values }) => [
        name,
        ...values.map((value) => value.toFixed(2)),
        ...values.slice(1).map((value) => (value - (first.get(name) ?? 0)).toFixed(2)),
      ]),
      [
        "total",
        ...modes.map((mode) => total(mode).toFixed(2)),
        ...modes.slice(1).map((mode) => (total(mode) - total(modes[0]!)).toFixed(2)),
      ],
    ],
    (column) => column >= 1,
  ),
);
