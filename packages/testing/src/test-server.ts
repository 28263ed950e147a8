// Starts the real Postern server in-process on an ephemeral loopback port, with the plugins under
// test and (optionally) a fake DNS zone wired into core's resolver.
import {
  createLogger,
  createServer,
  type LogOptions,
  type Plugin,
  type PosternServer,
  type ServerConfigInput,
} from "@postern/core";
import { type FakeDns, startFakeDns, type Zone } from "./fake-dns.ts";
import { type SendOptions, type SendResult, sendMail } from "./send.ts";
import { connectSmtp, type RawSmtpClient } from "./smtp-client.ts";

export interface TestServerOptions {
  plugins: Plugin[];
  /** A zone to serve from a fake DNS server, or an already started one. */
  dns?: Zone | FakeDns;
  hostname?: string;
  /** Overrides of the server config (listeners default to one plaintext listener on port 0). */
  config?: Partial<ServerConfigInput>;
}

export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface TestServer {
  readonly server: PosternServer;
  readonly port: number;
  readonly host: string;
  /** Port of each listener, in config order. */
  readonly ports: number[];
  readonly dns: FakeDns | undefined;
  /** Every log line the server wrote, parsed. */
  readonly logs: LogRecord[];
  /**
   * Lines that carried a top-level key twice (`{"name":"postern",…,"name":"x"}`), with the keys.
   * JSON.parse keeps the last value, so `logs` cannot show it; log shippers differ on which one
   * wins, so a plugin must not reuse the keys core binds (name, plugin, hook, msg, level, time).
   */
  readonly logKeyClashes: { keys: string[]; line: string }[];
  /** A raw client connected to the first listener (or `port`). */
  connect(options?: { port?: number; tls?: boolean }): Promise<RawSmtpClient>;
  /** Sends with nodemailer to the first listener. */
  send(options: Omit<SendOptions, "port"> & { port?: number }): Promise<SendResult>;
  stop(): Promise<void>;
}

function isFakeDns(value: Zone | FakeDns): value is FakeDns {
  return Array.isArray((value as FakeDns).servers) && typeof (value as FakeDns).close === "function";
}

export async function startTestServer(options: TestServerOptions): Promise<TestServer> {
  const ownDns = options.dns && !isFakeDns(options.dns) ? await startFakeDns(options.dns) : undefined;
  const dns = ownDns ?? (options.dns && isFakeDns(options.dns) ? options.dns : undefined);
  const logs: LogRecord[] = [];
  const logKeyClashes: { keys: string[]; line: string }[] = [];
  // Core's own logger (its base fields and all), written to this kit instead of stdout.
  const logger = createLogger(
    { level: (process.env.POSTERN_TEST_LOG ?? "info") as LogOptions["level"] },
    {
      write(line: string) {
        const record = JSON.parse(line) as LogRecord;
        logs.push(record);
        const keys = repeatedTopLevelKeys(line);
        if (keys.length > 0) logKeyClashes.push({ keys, line });
        if (process.env.POSTERN_TEST_LOG_STDERR) process.stderr.write(line);
      },
    },
  );
  const server = createServer(
    {
      hostname: options.hostname ?? "mx.test",
      listeners: [{ address: "127.0.0.1", port: 1 }],
      ...options.config,
      dns: { servers: dns?.servers ?? ["127.0.0.1:9"], timeoutMs: 2000, cacheTtlMs: 0, ...options.config?.dns },
      plugins: options.plugins,
    },
    { logger },
  );
  // Port 1 above only satisfies the schema; every listener binds an ephemeral port.
  for (const listener of server.config.listeners) listener.port = 0;
  await server.start();
  const ports = server.addresses().map((address) => address.port);
  const port = ports[0]!;
  return {
    server,
    port,
    ports,
    host: "127.0.0.1",
    dns,
    logs,
    logKeyClashes,
    connect(connectOptions = {}) {
      return connectSmtp(connectOptions.port ?? port, "127.0.0.1", { tls: connectOptions.tls ?? false });
    },
    send(sendOptions) {
      return sendMail({ port, ...sendOptions });
    },
    async stop() {
      await server.stop();
      await ownDns?.close();
    },
  };
}

/** The plugins that run a hook, in the order they run ("smtp" hooks unless another set is named). */
export function runOrder(server: PosternServer, hook: string, set = "smtp"): string[] {
  const info = server.hookTable().find((entry) => entry.set === set && entry.hook === hook);
  if (!info)
    throw new Error(
      `no ${set} hook "${hook}" (hooks: ${server
        .hookTable()
        .map((e) => `${e.set}.${e.hook}`)
        .join(", ")})`,
    );
  return info.handlers.map((handler) => handler.plugin);
}

/**
 * The top-level keys a JSON object text names more than once. A scan rather than a parse, because
 * a parse keeps only the last of two equal keys.
 */
export function repeatedTopLevelKeys(json: string): string[] {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const char = json[i];
    if (char === "{" || char === "[") depth++;
    else if (char === "}" || char === "]") depth--;
    else if (char === '"') {
      let end = i + 1;
      while (end < json.length && json[end] !== '"') end += json[end] === "\\" ? 2 : 1;
      let next = end + 1;
      while (json[next] === " ") next++;
      if (depth === 1 && json[next] === ":") {
        const key = JSON.parse(json.slice(i, end + 1)) as string;
        if (seen.has(key)) repeated.add(key);
        seen.add(key);
      }
      i = end;
    }
  }
  return [...repeated];
}
