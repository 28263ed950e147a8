// What metrics, the per-transaction log line and traces cost on the discard path, in one run: the
// same discard server started with no operations plugins, with @postern/metrics, with metrics and
// @postern/transaction-log (the recorder and its line), with those and @postern/tracing but no
// OpenTelemetry SDK (tracing's API is a no-op), and with all three and an SDK registered
// (BasicTracerProvider, a BatchSpanProcessor, an exporter that drops the batches: every span is
// made, nothing is sent). The variants take turns, round by round (the
// order rotating), driven by Postfix's smtp-source; the server's CPU time is read from /proc.
// Prints CPU per message and msg/s (medians of the rounds) per variant, the change over the bare
// one, and the load average during the run.
//   node --conditions=dev-source tooling/bench/ops-cost.ts
// Knobs: BENCH_ROUNDS (5), BENCH_MESSAGES per round (2000), BENCH_SESSIONS (20), BENCH_REUSE=1
// (smtp-source -d: many messages per connection), BENCH_VARIANTS (a comma list of the names below),
// BENCH_CPU_PROF (a folder for each server's CPU profile).
// The server is this file too (`ops-cost.ts serve <variant> <dns>`), so the plugins load from
// their source trees (packages/*/src) and nothing is added to the bench package's dependencies.
// transaction-log writes its line at "warn" (the server's level): the line is made and written,
// to /dev/null, as a logging server does; core's own info lines are off in every variant.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Plugin } from "@postern/core";

const here = dirname(fileURLToPath(import.meta.url));
const packages = join(here, "../../packages");

const variants = {
  none: "no operations plugins",
  metrics: "@postern/metrics",
  "metrics+log": "metrics + transaction-log",
  ops: "metrics + transaction-log + tracing, no OpenTelemetry SDK",
  "ops+sdk": "metrics + transaction-log + tracing, SDK with a dropping exporter",
} as const;
type Variant = keyof typeof variants;

// The few parts of the OpenTelemetry API and SDK used here (they are @postern/tracing's, loaded
// from its folder: the bench package does not depend on them).
interface OtelApi {
  trace: { setGlobalTracerProvider(provider: unknown): boolean };
}
interface OtelSdk {
  BatchSpanProcessor: new (
    exporter: object,
    config: { scheduledDelayMillis: number; maxQueueSize: number },
  ) => { forceFlush(): Promise<void> };
  BasicTracerProvider: new (config: { spanProcessors: unknown[] }) => object;
}

/** Counts what the server made, for the check that every variant really did its work. */
interface Made {
  queued: number | undefined;
  spans: number;
}

// ---------------------------------------------------------------------------------------------
// The server (a child process, so its CPU time is its own).

async function serve(variant: Variant, dnsServer: string): Promise<void> {
  const { accept, createLogger, createServer } = await import("@postern/core");
  const dir = await mkdtemp(join(tmpdir(), "postern-ops-cost-"));
  let spans = 0;
  let flushSpans = async (): Promise<void> => undefined;
  const plugins: Plugin[] = [];
  let metricsPort: () => number | undefined = () => undefined;
  if (variant !== "none") {
    const { default: metrics } = (await import(
      join(packages, "metrics/src/index.ts")
    )) as typeof import("../../packages/metrics/src/index.ts");
    const plugin = metrics({ listen: { address: "127.0.0.1", port: 0 } });
    metricsPort = () => plugin.port;
    plugins.push(plugin);
  }
  if (variant === "metrics+log" || variant === "ops" || variant === "ops+sdk") {
    const { default: transactionLog } = (await import(
      join(packages, "transaction-log/src/index.ts")
    )) as typeof import("../../packages/transaction-log/src/index.ts");
    const { default: tracing } = (await import(
      join(packages, "tracing/src/index.ts")
    )) as typeof import("../../packages/tracing/src/index.ts");
    plugins.push(transactionLog({ level: "warn" }));
    if (variant !== "metrics+log") plugins.push(tracing());
  }
  if (variant === "ops+sdk") {
    // The SDK is a dev dependency of @postern/tracing; the API keeps its provider on globalThis,
    // so the copy loaded here is the one the plugin's API sees.
    const fromTracing = createRequire(join(packages, "tracing/package.json"));
    const api = fromTracing("@opentelemetry/api") as OtelApi;
    const sdk = fromTracing("@opentelemetry/sdk-trace-base") as OtelSdk;
    const dropping = {
      export(batch: unknown[], done: (result: { code: number }) => void) {
        spans += batch.length;
        done({ code: 0 });
      },
      shutdown: async () => undefined,
    };
    const processor = new sdk.BatchSpanProcessor(dropping, { scheduledDelayMillis: 200, maxQueueSize: 8192 });
    api.trace.setGlobalTracerProvider(new sdk.BasicTracerProvider({ spanProcessors: [processor] }));
    flushSpans = () => processor.forceFlush();
  }
  plugins.push({
    name: "bench:discard",
    hooks: { rcptTo: () => accept({ route: "local" }), queue: () => accept() },
  });

  const server = createServer(
    {
      hostname: "mx.bench.test",
      listeners: [{ address: "127.0.0.1", port: 1, greetingDelayMs: 0 }],
      dns: { servers: [dnsServer], timeoutMs: 2000 },
      spoolDir: join(dir, "spool"),
      plugins,
    },
    { logger: createLogger({ level: "warn" }) },
  );
  // The schema wants a real port; the bench wants any free one (as compare/postern-server.ts).
  server.config.listeners[0]!.port = 0;
  await server.start();

  process.on("message", async (request: { type: string }) => {
    if (request.type === "made") {
      const port = metricsPort();
      let queued: number | undefined;
      if (port !== undefined) {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const line = text
          .split("\n")
          .find((entry) => entry.startsWith('postern_transactions_total{outcome="queued"} '));
        queued = line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
      }
      await flushSpans();
      process.send!({ type: "made", made: { queued, spans } satisfies Made });
    } else if (request.type === "stop") {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
      process.exit(0);
    }
  });
  process.send!({ type: "ready", port: server.addresses()[0]!.port });
}

// ---------------------------------------------------------------------------------------------
// The driver.

const ticksPerSecond = 100; // USER_HZ on Linux

/** User and system CPU seconds of the process (utime, stime). */
function cpuSeconds(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / ticksPerSecond, system: Number(fields[12]) / ticksPerSecond };
}

interface Running {
  child: ChildProcess;
  port: number;
}

function ask<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (message: { type: string } & T) => {
      if (message.type !== type) return;
      child.off("message", onMessage);
      resolve(message);
    };
    child.on("message", onMessage);
    child.send({ type });
  });
}

async function drive(): Promise<void> {
  const { reverseName, startFakeDns } = await import("@postern/testing");
  const { median, table } = await import("./compare/report.ts");
  const { smtpSource } = await import("./compare/smtp-source.ts");
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
  const messages = Number(process.env.BENCH_MESSAGES ?? 2000);
  const sessions = Number(process.env.BENCH_SESSIONS ?? 20);
  const reuse = process.env.BENCH_REUSE === "1";
  const warmUp = 500;
  const chosen = (process.env.BENCH_VARIANTS?.split(",") ?? Object.keys(variants)) as Variant[];
  for (const name of chosen) if (!(name in variants)) throw new Error(`unknown variant ${name}`);
  // As compare.ts: the server's reverse lookup of every client answered by a fake zone on loopback.
  const dns = await startFakeDns({ [reverseName("127.0.0.1")]: { PTR: ["localhost"] } });

  const start = (variant: Variant): Promise<Running> => {
    const child = spawn(
      process.execPath,
      [
        "--conditions=dev-source",
        // BENCH_CPU_PROF=<folder>: each server writes a .cpuprofile there when it stops.
        ...(process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
        fileURLToPath(import.meta.url),
        "serve",
        variant,
        dns.servers[0]!,
      ],
      { cwd: here, stdio: ["ignore", "ignore", "inherit", "ipc"] },
    );
    return new Promise((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`server ${variant} exited (${code})`)));
      child.on("message", (message: { type: string; port?: number }) => {
        if (message.type === "ready") resolve({ child, port: message.port! });
      });
    });
  };
  const stop = async (running: Running) => {
    running.child.removeAllListeners("exit");
    const exited = new Promise((done) => running.child.once("exit", done));
    running.child.send({ type: "stop" });
    await exited;
  };

  interface Round {
    cpuUs: number;
    userUs: number;
    systemUs: number;
    rate: number;
  }
  const results = new Map<Variant, Round[]>(chosen.map((name) => [name, []]));
  const loads: number[] = [];
  const round = async (variant: Variant): Promise<Round> => {
    const running = await start(variant);
    try {
      // The first messages pay for module loading and the JIT.
      await smtpSource(running.port, { id: "warm", label: "", sessions, reuse }, warmUp, { length: 10 * 1024 });
      const before = cpuSeconds(running.child.pid!);
      const run = await smtpSource(running.port, { id: "run", label: "", sessions, reuse }, messages, {
        length: 10 * 1024,
      });
      const after = cpuSeconds(running.child.pid!);
      if (run.error) throw new Error(`smtp-source against ${variant}: ${run.error}`);
      // Outside the measured window: did the variant really count and trace every message?
      const { made: counts } = await ask<{ made: Made }>(running.child, "made");
      const expected = warmUp + messages;
      if (variant !== "none" && counts.queued !== expected) {
        throw new Error(`${variant}: /metrics counted ${counts.queued} queued transactions, expected ${expected}`);
      }
      // A transaction span and its children (rcptTo and queue answered) per message.
      if (variant === "ops+sdk" && counts.spans < expected * 3) {
        throw new Error(`${variant}: ${counts.spans} spans exported for ${expected} messages`);
      }
      const perMessage = (seconds: number) => (seconds / messages) * 1e6;
      const userUs = perMessage(after.user - before.user);
      const systemUs = perMessage(after.system - before.system);
      return { cpuUs: userUs + systemUs, userUs, systemUs, rate: messages / run.seconds };
    } finally {
      await stop(running);
    }
  };

  for (let index = 0; index < rounds; index++) {
    // Rotate the order, so a drift in machine load falls on every variant alike.
    const order = chosen.map((_, offset) => chosen[(index + offset) % chosen.length]!);
    for (const variant of order) {
      loads.push(loadavg()[0]!);
      const result = await round(variant);
      results.get(variant)!.push(result);
      process.stderr.write(
        `[ops-cost] round ${index + 1} ${variant}: ${result.cpuUs.toFixed(0)} µs/msg, ${result.rate.toFixed(0)} msg/s\n`,
      );
    }
  }
  loads.push(loadavg()[0]!);
  await dns.close();

  const summary = (variant: Variant) => {
    const list = results.get(variant)!;
    return {
      cpu: median(list.map((result) => result.cpuUs)),
      user: median(list.map((result) => result.userUs)),
      system: median(list.map((result) => result.systemUs)),
      rate: median(list.map((result) => result.rate)),
      spread: [Math.min(...list.map((result) => result.cpuUs)), Math.max(...list.map((result) => result.cpuUs))],
    };
  };
  const base = chosen.includes("none") ? summary("none") : undefined;
  const rows = chosen.map((variant) => {
    const figures = summary(variant);
    const change = base && variant !== "none" ? figures.cpu - base.cpu : undefined;
    return [
      variant,
      figures.cpu.toFixed(0),
      `${figures.spread[0]!.toFixed(0)}–${figures.spread[1]!.toFixed(0)}`,
      figures.user.toFixed(0),
      figures.system.toFixed(0),
      change === undefined
        ? ""
        : `${change >= 0 ? "+" : ""}${change.toFixed(0)} (${((change / base!.cpu) * 100).toFixed(1)}%)`,
      figures.rate.toFixed(0),
      variants[variant],
    ];
  });
  process.stdout.write(
    [
      `operations cost, discard path, ${messages} × 10 KB messages per round, ${sessions} sessions${reuse ? ", reused connections" : ", one message per connection"}, ${rounds} rounds; load average (1 min) median ${median(loads).toFixed(2)}, range ${Math.min(...loads).toFixed(2)}–${Math.max(...loads).toFixed(2)}`,
      table(
        ["variant", "µs CPU/msg", "rounds", "user", "system", "vs none", "msg/s", "what runs"],
        rows,
        (column) => column >= 1 && column <= 6,
      ),
      "",
    ].join("\n"),
  );
}

if (process.argv[2] === "serve") await serve(process.argv[3] as Variant, process.argv[4] ?? "127.0.0.1:9");
else await drive();
