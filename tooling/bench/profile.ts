// CPU profile of one server from compare.ts under smtp-source load, with the functions that took
// the most time (self time) printed: where to look when a target of BENCHMARKS.md is missed.
//   node --conditions=dev-source tooling/bench/profile.ts <discard|maildir|pipeline|relay-fs|relay-pg|bare> [smtp-source flags]
//   e.g. profile.ts discard -s 20 -d     (default flags: -s 20; 6000 messages after 1000 of warm-up)
// The .cpuprofile is kept (path printed) for Chrome DevTools or speedscope.
// PROFILE_MESSAGES (6000) messages of PROFILE_BYTES (10240) each, e.g. PROFILE_BYTES=1048576 for
// where the cost per byte goes (the cost curve's large messages). The relay modes get an smtp-sink
// of their own as the next hop, and the profile ends once it has every message: a next hop that
// is not there would profile the deferral path instead (it did once).
import { fork, spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { reverseName, startFakeDns } from "@postern/testing";
import { freePort, terminate, waitForGreeting } from "./compare/launch.ts";

const [mode = "discard", ...flags] = process.argv.slice(2);
const sourceFlags = flags.length > 0 ? flags : ["-s", "20"];
const messages = Number(process.env.PROFILE_MESSAGES ?? 6000);
const bytes = Number(process.env.PROFILE_BYTES ?? 10240);

const dns = await startFakeDns({
  "example.org": { TXT: ["v=spf1 ip4:127.0.0.0/8 -all"] },
  [reverseName("127.0.0.1")]: { PTR: ["localhost"] },
});
const outDir = await mkdtemp(join(tmpdir(), "postern-profile-"));
const relay = mode.startsWith("relay-");
const sinkPort = relay ? await freePort() : 0;
const sinkLog = join(outDir, "sink.log");
const sink = relay
  ? spawn("smtp-sink", ["-c", "-u", "nobody", `127.0.0.1:${sinkPort}`, "1024"], {
      stdio: ["ignore", openSync(sinkLog, "a"), "inherit"],
    })
  : undefined;
if (sink) await waitForGreeting(sinkPort);
/** smtp-sink -c writes "… mesg=N" after every message. */
const delivered = () =>
  Math.max(0, ...[...readFileSync(sinkLog, "latin1").matchAll(/mesg=(\d+)/g)].map((match) => Number(match[1])));
const script = mode === "bare" ? "./compare/bare-server.ts" : "./compare/postern-server.ts";
const args = mode === "bare" ? ["0"] : [mode, dns.servers[0]!];
const child = fork(fileURLToPath(new URL(script, import.meta.url)), args, {
  execArgv: [
    "--conditions=dev-source",
    "--expose-gc",
    "--cpu-prof",
    "--cpu-prof-interval=200",
    `--cpu-prof-dir=${outDir}`,
  ],
  stdio: ["ignore", "inherit", "inherit", "ipc"],
  env: {
    ...process.env,
    ...(relay ? { BENCH_SINK_PORT: String(sinkPort), BENCH_PG_SCHEMA: `bench_profile_${process.pid}` } : {}),
  },
});
const ready = await new Promise<{ port: number }>((resolve) =>
  child.on("message", (message: { type: string; port: number }) => {
    if (message.type === "ready") resolve(message);
  }),
);

// Asynchronously: the fake DNS server answers from this process while smtp-source runs.
async function run(count: number): Promise<string> {
  const started = Date.now();
  const child = spawn(
    "smtp-source",
    [
      ...sourceFlags,
      "-m",
      String(count),
      "-l",
      String(bytes),
      "-f",
      "bench@example.org",
      "-t",
      "user@bench.test",
    ].concat(["-M", "client.bench", `127.0.0.1:${ready.port}`]),
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const code = await new Promise((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`smtp-source failed (exit ${code})`);
  return `${count} messages, ${(count / ((Date.now() - started) / 1000)).toFixed(0)} msg/s`;
}
const warmup = Math.min(1000, messages);
console.log(`warm-up: ${await run(warmup)}`);
console.log(`profiled: ${await run(messages)}`);
if (sink) {
  const deadline = Date.now() + 120_000;
  while (delivered() < warmup + messages && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  console.log(`delivered to the sink: ${delivered()} of ${warmup + messages}`);
  await terminate(sink);
}
child.send({ type: "stop" });
await new Promise((resolve) => child.once("exit", resolve));
await dns.close();

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
const [file] = (await readdir(outDir)).filter((name) => name.endsWith(".cpuprofile"));
const profile = JSON.parse(await readFile(join(outDir, file!), "utf8")) as {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
};
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const selfTime = new Map<string, number>();
const moduleTime = new Map<string, number>();
let total = 0;
/**
 * Who a frame belongs to: a workspace package (packages/core), an npm package (smtp-server),
 * Node's own JavaScript (node:internal), or native code and V8 (GC, idle, C++ bindings such as
 * writeUtf8String, whose self time includes the system call it makes).
 */
function owner(url: string, functionName: string): string {
  const packagePath = /\/node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (packagePath) return packagePath[1]!;
  const workspace = /\/(packages|tooling|apps)\/([^/]+)\//.exec(url);
  if (workspace) return `${workspace[1]}/${workspace[2]}`;
  if (url.startsWith("node:")) return "node (JavaScript)";
  if (functionName.startsWith("(")) return functionName; // (idle), (garbage collector), (program)
  return url ? url : "native (C++ bindings, system calls)";
}
profile.samples.forEach((id, index) => {
  const frame = nodes.get(id)!.callFrame;
  const where = frame.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/\/.*?\/(packages|tooling)\//, "$1/");
  const key = `${frame.functionName || "(anonymous)"} ${where ? `${where}:${frame.lineNumber + 1}` : ""}`;
  const delta = profile.timeDeltas[index] ?? 0;
  selfTime.set(key, (selfTime.get(key) ?? 0) + delta);
  const module = owner(frame.url, frame.functionName);
  moduleTime.set(module, (moduleTime.get(module) ?? 0) + delta);
  total += delta;
});
// The profile spans the process's life: start-up and warm-up are in it, so per message is over all.
console.log(
  `\nself time by owner, of ${(total / 1e6).toFixed(1)} s (ms per message over all ${warmup + messages} sent):`,
);
for (const [module, time] of [...moduleTime].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
  console.log(
    `${((100 * time) / total).toFixed(1).padStart(6)}%  ${(time / 1000 / (warmup + messages)).toFixed(3).padStart(7)} ms/msg  ${module}`,
  );
}
console.log(`\nself time, top 30 of ${(total / 1e6).toFixed(1)} s (${join(outDir, file!)}):`);
for (const [key, time] of [...selfTime].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
  console.log(`${((100 * time) / total).toFixed(1).padStart(6)}%  ${key}`);
}
