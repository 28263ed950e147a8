// The Postern server: parses the config, builds the hook runners (core's SMTP set and every set a
// plugin defines), runs plugin setup, opens the listeners, and shuts down gracefully. The jobs live
// in their own modules: protocol.ts (smtp-server callbacks → hooks), message-path.ts (end of DATA),
// listeners.ts, shutdown.ts, session-state.ts.
import type { Logger } from "pino";
import { parseServerConfig, type ServerConfig, type ServerConfigInput } from "./config.ts";
import { createResolver, type DnsResolver } from "./dns.ts";
import { PosternError } from "./errors.ts";
import { createEventChannel, type EventChannel } from "./events.ts";
import { type HookInfo, HookRunner, type HookRunnerOptions } from "./hook-runner.ts";
import type { AnyHookSet, HookSet } from "./hook-set.ts";
import { type Hooks, type ListeningAddress, type ServerContext, smtpHooks, undefinedSetError } from "./hooks.ts";
import { type OpenListener, openListeners } from "./listeners.ts";
import { createLogger } from "./logger.ts";
import { createProtocol } from "./protocol.ts";
import type { SessionState } from "./session-state.ts";
import { shutDown } from "./shutdown.ts";
import { startTlsReload, type TlsReloader } from "./tls-reload.ts";

export interface CreateServerOptions {
  /** Use this logger instead of one built from `config.log`. */
  logger?: Logger;
  /** Use this resolver instead of one built from `config.dns`. */
  resolver?: DnsResolver;
}

export type { ListeningAddress };

export interface PosternServer {
  readonly config: ServerConfig;
  readonly context: ServerContext;
  /** The observer channel (also on context): subscribe before start() to see every session. */
  readonly events: EventChannel;
  /** Runs plugin setup, then opens every listener. */
  start(): Promise<void>;
  /** Stops accepting, lets transactions in flight finish (bounded), closes plugins. */
  stop(): Promise<void>;
  /** Reads the TLS certificates again (as SIGHUP does); new connections get them, open ones keep theirs. */
  reloadTls(): Promise<void>;
  addresses(): ListeningAddress[];
  /** Every hook of every set (SMTP, outbound's …) with its rule, and its handlers in run order. */
  hookTable(): HookInfo[];
}

/** One runner per hook set: core's SMTP hooks, and every set a configured plugin defines. */
// biome-ignore lint/suspicious/noExplicitAny: each runner is typed by its set where it is taken out.
type AnyRunner = HookRunner<any>;

function buildRunners(config: ServerConfig, options: HookRunnerOptions): Map<AnyHookSet, AnyRunner> {
  const sets: AnyHookSet[] = [smtpHooks];
  for (const plugin of config.plugins) {
    for (const set of plugin.defines ?? []) if (!sets.includes(set)) sets.push(set);
  }
  for (const plugin of config.plugins) {
    for (const handlers of plugin.handles ?? []) {
      if (!sets.includes(handlers.set)) throw undefinedSetError(plugin.name, handlers.set.name);
    }
  }
  const runners = new Map<AnyHookSet, AnyRunner>();
  for (const set of sets) {
    const registrations = config.plugins.map((plugin) => ({
      plugin: plugin.name,
      declarations:
        set === smtpHooks ? plugin.hooks : plugin.handles?.find((handlers) => handlers.set === set)?.declarations,
    }));
    runners.set(set, new HookRunner(set, registrations, options));
  }
  return runners;
}

export function createServer(input: ServerConfigInput, options: CreateServerOptions = {}): PosternServer {
  const config = parseServerConfig(input);
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const given =
    options.resolver ??
    createResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs, cacheTtlMs: config.dns.cacheTtlMs });
  // Bound once: plugins hand `resolver.resolve` to mailauth as a detached function.
  const resolver: DnsResolver = { resolve: given.resolve.bind(given), reverse: given.reverse.bind(given) };
  const events = createEventChannel(logger);
  const runners = buildRunners(config, { logger, events, defaultTimeoutMs: config.limits.hookTimeoutMs });
  const hooks = runners.get(smtpHooks) as HookRunner<Hooks>;
  const authservId = config.authservId ?? config.hostname;
  const sessions = new Map<string, SessionState>();
  const inFlight = new Set<string>();
  const closing = new Set<Promise<void>>();
  let listeners: OpenListener[] = [];
  let stopping: Promise<void> | undefined;
  let started = false;
  let tlsReloader: TlsReloader | undefined;

  const hookTable = () => [...runners.values()].flatMap((runner) => runner.describe());
  const addresses = () => listeners.map(({ info }) => info);

  const context: ServerContext = {
    hostname: config.hostname,
    authservId,
    logger,
    resolver,
    spoolDir: config.spoolDir,
    hookTimeoutMs: config.limits.hookTimeoutMs,
    plugins: config.plugins,
    events,
    runner<Signatures>(set: HookSet<Signatures>) {
      const runner = runners.get(set);
      if (!runner) {
        throw new PosternError(
          "POSTERN_PLUGIN_INVALID",
          `the "${set.name}" hooks are run by no configured plugin; list the set in the plugin's \`defines\``,
        );
      }
      return runner as HookRunner<Signatures>;
    },
    hookTable,
    listening: addresses,
  };

  const protocol = createProtocol({
    config,
    authservId,
    hooks,
    events,
    logger,
    sessions,
    inFlight,
    closing,
    stopping: () => stopping !== undefined,
  });

  return {
    config,
    context,
    events,

    async start() {
      if (started) throw new Error("server already started");
      started = true;
      for (const plugin of config.plugins) {
        try {
          await plugin.setup?.(context);
        } catch (cause) {
          throw new PosternError(
            "POSTERN_SETUP_FAILED",
            `${plugin.name} failed to set up: ${cause instanceof Error ? cause.message : String(cause)}`,
            { plugin: plugin.name, cause },
          );
        }
      }
      listeners = await openListeners(config, protocol, resolver, logger);
      const withTls = listeners.flatMap(({ tls }) => (tls ? [tls] : []));
      if (withTls.length > 0) tlsReloader = startTlsReload(withTls, config.tlsReload, logger);
    },

    stop() {
      stopping ??= (async () => {
        tlsReloader?.close();
        await shutDown({ config, logger, listeners, sessions, inFlight, closing });
      })();
      return stopping;
    },

    async reloadTls() {
      await tlsReloader?.reload();
    },

    addresses,
    hookTable,
  };
}
