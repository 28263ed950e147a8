// The Postern server compare.ts measures, in its own process so its RSS and CPU are its own.
//   node --conditions=dev-source postern-server.ts <discard|maildir|pipeline|pipeline-same|relay-fs|relay-pg> <dns host:port>
// Tells its parent {type:"ready", port} (or {type:"unavailable", reason}) over IPC; answers
// {type:"gc"} with {type:"gc", rss} after a full collection, and exits on {type:"stop"}.
// Greeting delay 0 (the listener's default), log level "warn" (BENCH_LOG_LEVEL=info shows each
// delivery, to see that a relay row delivers rather than defers), DNS from the bench's fake server.
// BENCH_MAILDIR_MODULE=<path of a store-maildir index.ts> stores with that implementation instead
// of @postern/store-maildir: an earlier version, for before/after figures in one run.
// relay-fs / relay-pg: every recipient is relayed by @postern/outbound through a smarthost on
// 127.0.0.1:$BENCH_SINK_PORT (the bench's smtp-sink), queued in a folder or in PostgreSQL
// ($DATABASE_URL, schema $BENCH_PG_SCHEMA, dropped on stop).
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accept, createLogger, createServer, type Plugin } from "@postern/core";

const mode = process.argv[2] ?? "discard";
const dnsServer = process.argv[3] ?? "127.0.0.1:9";
const maildirRoot = process.env.BENCH_MAILDIR;
const dir = await mkdtemp(join(tmpdir(), "postern-bench-server-"));
const root = maildirRoot ?? join(dir, "maildir");

/** Imports a plugin factory, or says why it is not there yet (another issue is building it). */
async function plugin<Options>(name: string, options: Options): Promise<Plugin> {
  let module: { default?: unknown };
  try {
    module = (await import(name)) as { default?: unknown };
  } catch (error) {
    throw new Error(`${name}: not yet built (${(error as Error).message.split("\n")[0]})`);
  }
  if (typeof module.default !== "function") throw new Error(`${name}: not yet built (no default export)`);
  return (module.default as (options: Options) => Plugin)(options);
}

const discard: Plugin = {
  name: "bench:discard",
  hooks: {
    rcptTo: () => accept({ route: "local" }),
    queue: () => accept(),
  },
};

const relayEverything: Plugin = {
  name: "bench:relay",
  hooks: { rcptTo: () => accept({ route: "relay" }) },
};
const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const pgSchema = process.env.BENCH_PG_SCHEMA ?? `bench_relay_${process.pid}`;

async function pluginsFor(chosen: string): Promise<Plugin[]> {
  if (chosen === "discard") return [discard];
  if (chosen === "relay-fs" || chosen === "relay-pg") {
    const sinkPort = Number(process.env.BENCH_SINK_PORT);
    if (!sinkPort) throw new Error("BENCH_SINK_PORT is not set");
    return [
      relayEverything,
      await plugin("@postern/outbound", {
        queue:
          chosen === "relay-fs"
            ? { type: "fs", dir: join(dir, "queue") }
            : {
                type: "postgres",
                connectionString: databaseUrl,
                schema: pgSchema,
                maxConnections: Number(process.env.BENCH_PG_MAX_CONNECTIONS ?? 10),
              },
        // Like Postfix's relayhost: one next hop, no MX lookup, no TLS (smtp-sink has none).
        smarthost: { host: "127.0.0.1", port: sinkPort, tls: "none" },
        mtaSts: { enabled: false },
        // Postfix's default_destination_concurrency_limit, which the Postfix row keeps.
        concurrency: { total: 20, perDomain: 20 },
      }),
    ];
  }
  // "*@bench.test": any local part, on purpose (without it the plugin warns at start).
  const recipients = await plugin("@postern/recipients", { domains: ["bench.test"], mailboxes: ["*@bench.test"] });
  const maildir = await plugin(process.env.BENCH_MAILDIR_MODULE ?? "@postern/store-maildir", { root });
  if (chosen === "maildir") return [recipients, maildir];
  // The checks the Haraka pipeline row runs, no more (no DMARC, no rate limits).
  if (chosen === "pipeline-same")
    return [recipients, await plugin("@postern/spf", {}), await plugin("@postern/dkim", {}), maildir];
  if (chosen === "pipeline") {
    return [
      // Limits far above what the benchmark sends, so every message passes every check.
      await plugin("@postern/rate-limit", {
        limits: [
          { kind: "concurrent", limit: 10_000 },
          { kind: "connections", limit: "1000000/1m" },
          { kind: "messages", limit: "1000000/1m" },
          { kind: "recipients", limit: "1000000/1m" },
        ],
      }),
      recipients,
      await plugin("@postern/spf", {}),
      await plugin("@postern/dkim", {}),
      await plugin("@postern/dmarc", {}),
      maildir,
    ];
  }
  throw new Error(`unknown mode ${chosen}`);
}

let plugins: Plugin[];
try {
  plugins = await pluginsFor(mode);
} catch (error) {
  process.send!({ type: "unavailable", reason: (error as Error).message });
  await rm(dir, { recursive: true, force: true });
  process.exit(0);
}

const server = createServer(
  {
    hostname: "mx.bench.test",
    listeners: [{ address: "127.0.0.1", port: 1, greetingDelayMs: 0 }],
    limits: { maxMessageSize: "64MB" },
    dns: { servers: [dnsServer], timeoutMs: 2000 },
    spoolDir: join(dir, "spool"),
    plugins,
  },
  { logger: createLogger({ level: (process.env.BENCH_LOG_LEVEL as "warn" | undefined) ?? "warn" }) },
);
server.config.listeners[0]!.port = Number(process.env.BENCH_PORT ?? 0);
await server.start();

process.on("message", async (request: { type: string }) => {
  if (request.type === "gc") {
    globalThis.gc?.();
    process.send!({ type: "gc", rss: process.memoryUsage().rss });
  } else if (request.type === "stop") {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
    if (mode === "relay-pg") {
      execFileSync("psql", [databaseUrl, "-q", "-c", `DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`], {
        stdio: "ignore",
      });
    }
    process.exit(0);
  }
});
process.send!({ type: "ready", port: server.addresses()[0]!.port, root });
