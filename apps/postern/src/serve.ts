// One process serving the configuration: what `postern start` does alone, and what each worker of
// `postern start --workers N` does. It loads the config (or the embedded default), runs the
// preflight, starts the server and serves until a stop is requested, then stops gracefully —
// transactions in flight finish, idle sessions get 421. SIGHUP reloads the whole configuration
// (config-reload.ts); an uncaught error stops the process (crash-policy.ts).
import type { ListeningAddress, Logger, PosternServer } from "@postern/core";
import { createLogger, createServer, PosternError } from "@postern/core";
import { type ConfigRequest, configRequestFrom } from "./config-args.ts";
import { reloadOnHangup } from "./config-reload.ts";
import { exitOnUncaught } from "./crash-policy.ts";
import { errorLine } from "./error-line.ts";
import { type LoadedConfig, loadConfig } from "./load-config.ts";
import { formatFinding, preflight } from "./preflight/index.ts";
import { reportPreflight } from "./preflight/report.ts";
import { limitSetupTime } from "./setup-deadline.ts";

/** Resolves when the process is asked to stop, with the line that says so to the operator. */
export interface StopWatch {
  readonly requested: Promise<string>;
  /** Set once the server listens: until then a stop request ends the process at once. */
  serving(): void;
  dispose(): void;
}

export interface ServeOptions {
  /** The config options of the command line (-c, --domain, --listen, --port). */
  readonly values: Parameters<typeof configRequestFrom>[0];
  readonly setupTimeoutMs: number;
  readonly stop: StopWatch;
  /** One line for the operator on stderr. */
  readonly say: (line: string) => void;
  /**
   * "report": print every finding and a count, as `postern start` alone does; "errors": the
   * primary of --workers reported them already, so a worker prints only what stops it.
   */
  readonly preflight: "report" | "errors";
  /** Workers of --workers N: the preflight's checks for shared state. */
  readonly workers: number;
  /** Fields every log line of this process carries (a worker's number). */
  readonly logFields?: Record<string, unknown>;
  /** Called once every listener is bound, with what the server listens on. */
  readonly onServing: (server: PosternServer, loaded: LoadedConfig, addresses: ListeningAddress[]) => void;
}

async function preflightPasses(loaded: LoadedConfig, options: ServeOptions): Promise<boolean> {
  if (options.preflight === "report") {
    const verdict = await reportPreflight(loaded, {
      network: false,
      strict: false,
      command: "postern start",
      workers: options.workers,
    });
    return !verdict.failed;
  }
  const errors = (await preflight(loaded, { network: false, workers: options.workers })).filter(
    (finding) => finding.severity === "error",
  );
  for (const finding of errors) options.say(formatFinding(loaded.source, finding));
  return errors.length === 0;
}

/** Serves until a stop is requested; resolves to the exit code (0 after a graceful stop, 1 when it could not start). */
export async function serve(options: ServeOptions): Promise<number> {
  const { say, stop } = options;
  // The folder relative paths on the command line mean; loadConfig moves into the config's.
  const startDir = process.cwd();
  const request: ConfigRequest = configRequestFrom(options.values);
  const failed = () => {
    stop.dispose();
    return 1;
  };

  const loaded = await loadConfig(request);
  if (!(await preflightPasses(loaded, options))) return failed();
  const { config, file } = loaded;
  limitSetupTime(config.plugins, options.setupTimeoutMs);
  const logger: Logger | undefined = options.logFields
    ? createLogger({ level: config.log.level }).child(options.logFields)
    : undefined;
  // SIGHUP reloads everything, the certificates with the rest.
  const server = createServer(config, { certificatesOnSighup: false, ...(logger ? { logger } : {}) });
  const crashPolicy = exitOnUncaught(server, { logger: server.context.logger, say });

  try {
    await server.start();
  } catch (error) {
    if (!(error instanceof PosternError)) throw error;
    // e.g. "postern.yaml: listeners.0: cannot listen on 127.0.0.1:25: EADDRINUSE". The process
    // exits right after, which also closes any listener that did open.
    process.stderr.write(`${file ?? "postern start"}: ${errorLine(error)}\n`);
    crashPolicy.dispose();
    return failed();
  }
  stop.serving();

  // Without a handler SIGHUP would end the process (systemd's ExecReload sends it).
  const hangup = reloadOnHangup(server, {
    load: () => loadConfig(request, startDir, { fresh: true }),
    setupTimeoutMs: options.setupTimeoutMs,
    workers: options.workers,
    logger: server.context.logger,
    say,
  });
  options.onServing(server, loaded, server.addresses());

  say(await stop.requested);
  await server.stop();
  hangup.dispose();
  crashPolicy.dispose();
  stop.dispose();
  say("stopped");
  return 0;
}

/** The lines `postern start` prints once it serves: what the embedded default does, each listener. */
export function listeningLines(loaded: LoadedConfig, addresses: readonly ListeningAddress[]): string[] {
  const lines = loaded.summary ? [loaded.summary] : [];
  for (const [index, address] of addresses.entries()) {
    const listener = loaded.config.listeners[index]!;
    const host = address.address.includes(":") ? `[${address.address}]` : address.address;
    lines.push(
      `listening on ${host}:${address.port} (tls ${listener.tls}, auth ${listener.auth}; config ${loaded.source})`,
    );
  }
  return lines;
}
