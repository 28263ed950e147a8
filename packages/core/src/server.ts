// The Postern server: parses the config, builds the hook runners (core's SMTP set and every set a
// plugin defines), runs plugin setup, opens the listeners, reloads the whole configuration, and
// shuts down gracefully. The jobs live in their own modules: protocol.ts (smtp-server callbacks →
// hooks), message-path.ts (end of DATA), listeners.ts, shutdown.ts, session-state.ts.
//
// A configuration is served by a *generation*: its plugins, hook runners, observer channel and
// smtp-server handlers. reload() builds and sets up a new generation beside the running one, hands
// it the bound sockets (new connections go to it), and ends the old one once its sessions are done,
// so nothing in flight sees a plugin change under it.
import type { Logger } from "pino";
import { parseServerConfig, type ServerConfig, type ServerConfigInput } from "./config.ts";
import { createResolver, type DnsResolver } from "./dns.ts";
import { PosternError } from "./errors.ts";
import { createEventChannel, type EventChannel } from "./events.ts";
import { type HookInfo, HookRunner, type HookRunnerOptions } from "./hook-runner.ts";
import type { AnyHookSet, HookSet } from "./hook-set.ts";
import {
  type Hooks,
  type ListeningAddress,
  type Plugin,
  type ServerContext,
  smtpHooks,
  undefinedSetError,
} from "./hooks.ts";
import { type BoundSocket, bindSocket, closeSockets, createHandlers, type ListenerHandler } from "./listeners.ts";
import { createLocalSubmission } from "./local-submission.ts";
import { createLogger } from "./logger.ts";
import { createProtocol } from "./protocol.ts";
import type { SessionState } from "./session-state.ts";
import { endGeneration, type GenerationState } from "./shutdown.ts";
import { startTlsReload, type TlsReloader } from "./tls-reload.ts";

export interface CreateServerOptions {
  /** Use this logger instead of one built from `config.log`. */
  logger?: Logger;
  /** Use this resolver instead of one built from `config.dns`. */
  resolver?: DnsResolver;
  /**
   * Reload the certificates on SIGHUP as `tlsReload.onSighup` says (default true). An app that
   * reloads the whole configuration on SIGHUP (postern start) sets false: a reload reads them too.
   */
  certificatesOnSighup?: boolean;
}

export type { ListeningAddress };

export interface StopOptions {
  /** How long transactions in flight may take before they get 421 (default: shutdownTimeoutMs). */
  timeoutMs?: number;
}

export interface PosternServer {
  /** The configuration being served (the latest one after a reload). */
  readonly config: ServerConfig;
  /** What the current generation's plugins got in setup(). */
  readonly context: ServerContext;
  /**
   * The observer channel (also on context): subscribe before start() to see every session. It
   * outlives reloads: it gets the events of every generation.
   */
  readonly events: EventChannel;
  /** Runs plugin setup, then opens every listener. */
  start(): Promise<void>;
  /** Stops accepting, lets transactions in flight finish (bounded), closes plugins. */
  stop(options?: StopOptions): Promise<void>;
  /**
   * Serves a new configuration. It is parsed and validated, its plugins set up and its
   * certificates loaded and its new listeners bound before anything changes; any failure rejects
   * (a ConfigError names the key) and the running configuration keeps serving. Then new
   * connections go to the new plugins and listeners (a listener at the same address and port
   * keeps its socket), listeners no longer configured stop accepting, and the sessions in flight
   * finish on the old plugins, which close after them (bounded by shutdownTimeoutMs).
   */
  reload(input: ServerConfigInput): Promise<void>;
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

/** A generation's own channel that also feeds the server's: its plugins' subscriptions end with it. */
function generationChannel(root: EventChannel, logger: Logger): EventChannel {
  const own = createEventChannel(logger);
  return {
    on: own.on,
    observed: (key) => own.observed(key) || root.observed(key),
    emit(key, event) {
      own.emit(key, event);
      root.emit(key, event);
    },
  };
}

interface Generation extends GenerationState {
  readonly config: ServerConfig;
  readonly context: ServerContext;
  readonly runners: Map<AnyHookSet, AnyRunner>;
  readonly protocol: ReturnType<typeof createProtocol>;
  handlers: ListenerHandler[];
  tlsReloader: TlsReloader | undefined;
  /** Set once the generation is being ended (by a reload or by stop), so it ends once. */
  ending: Promise<void> | undefined;
}

interface Shared {
  readonly logger: Logger;
  readonly resolver: DnsResolver;
  readonly events: EventChannel;
  readonly addresses: () => ListeningAddress[];
  readonly stopping: () => boolean;
}

function createGeneration(config: ServerConfig, shared: Shared): Generation {
  const { logger, resolver } = shared;
  const events = generationChannel(shared.events, logger);
  const runners = buildRunners(config, { logger, events, defaultTimeoutMs: config.limits.hookTimeoutMs });
  const hooks = runners.get(smtpHooks) as HookRunner<Hooks>;
  const authservId = config.authservId ?? config.hostname;
  const sessions = new Map<string, SessionState>();
  const inFlight = new Set<string>();
  const closing = new Set<Promise<void>>();
  const hookTable = () => [...runners.values()].flatMap((runner) => runner.describe());
  // Set once the protocol exists (it needs the context's collections, the context needs it).
  let submit: ServerContext["submit"] = () => Promise.reject(new Error("the server is not set up yet"));

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
    listening: shared.addresses,
    submit: (submission) => submit(submission),
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
    stopping: shared.stopping,
  });
  submit = createLocalSubmission({ config, messagePath: protocol.messagePath, claim: protocol.claim });
  return {
    config,
    context,
    runners,
    protocol,
    plugins: config.plugins,
    sessions,
    inFlight,
    closing,
    handlers: [],
    tlsReloader: undefined,
    ending: undefined,
    hurried: false,
  };
}

/** Runs every plugin's setup in order; on a failure the ones already set up are closed again. */
async function setUpPlugins(generation: Generation, logger: Logger): Promise<void> {
  const done: Plugin[] = [];
  for (const plugin of generation.plugins) {
    try {
      await plugin.setup?.(generation.context);
      done.push(plugin);
    } catch (cause) {
      for (const ready of done.reverse()) {
        await Promise.resolve()
          .then(() => ready.close?.())
          .catch((error: unknown) => logger.error({ err: error, plugin: ready.name }, "plugin close failed"));
      }
      throw new PosternError(
        "POSTERN_SETUP_FAILED",
        `${plugin.name} failed to set up: ${cause instanceof Error ? cause.message : String(cause)}`,
        { plugin: plugin.name, cause },
      );
    }
  }
}

export function createServer(input: ServerConfigInput, options: CreateServerOptions = {}): PosternServer {
  const firstConfig = parseServerConfig(input);
  const logger = options.logger ?? createLogger({ level: firstConfig.log.level });
  const given =
    options.resolver ??
    createResolver({
      servers: firstConfig.dns.servers,
      timeoutMs: firstConfig.dns.timeoutMs,
      cacheTtlMs: firstConfig.dns.cacheTtlMs,
    });
  // Bound once: plugins hand `resolver.resolve` to mailauth as a detached function.
  const resolver: DnsResolver = { resolve: given.resolve.bind(given), reverse: given.reverse.bind(given) };
  const events = createEventChannel(logger);
  let sockets: BoundSocket[] = [];
  let stopping: Promise<void> | undefined;
  let started = false;
  /** Generations still running: the current one last; older ones until their sessions ended. */
  const live: Generation[] = [];
  /** Reloads run one at a time, in order. */
  let reloads: Promise<unknown> = Promise.resolve();

  const addresses = () => sockets.map(({ info }) => info);
  const shared: Shared = { logger, resolver, events, addresses, stopping: () => stopping !== undefined };
  let current = createGeneration(firstConfig, shared);
  live.push(current);

  const startTls = (generation: Generation) => {
    const withTls = generation.handlers.flatMap(({ tls }) => (tls ? [tls] : []));
    if (withTls.length === 0) return;
    const reloadOptions = {
      ...generation.config.tlsReload,
      onSighup: generation.config.tlsReload.onSighup && options.certificatesOnSighup !== false,
    };
    generation.tlsReloader = startTlsReload(withTls, reloadOptions, logger);
  };

  const end = (generation: Generation, endOptions: { timeoutMs: number; patient: boolean }) => {
    generation.tlsReloader?.close();
    generation.ending ??= endGeneration(generation, { logger, ...endOptions });
    return generation.ending;
  };

  const retire = (generation: Generation) => {
    void end(generation, { timeoutMs: generation.config.shutdownTimeoutMs, patient: true })
      .catch((error: unknown) => logger.error({ err: error }, "ending the previous configuration failed"))
      .finally(() => {
        const index = live.indexOf(generation);
        if (index !== -1) live.splice(index, 1);
        logger.info({ sessions: generation.sessions.size }, "previous configuration closed");
      });
  };

  const swapIn = async (input: ServerConfigInput) => {
    if (!started) throw new PosternError("POSTERN_RELOAD_REFUSED", "the server has not started; call start() first");
    if (stopping) throw new PosternError("POSTERN_RELOAD_REFUSED", "the server is stopping");
    const config = parseServerConfig(input);
    const next = createGeneration(config, shared);
    next.handlers = await createHandlers(config, next.protocol, resolver, logger);
    await setUpPlugins(next, logger);
    // Bind what is new before anything changes, so a port in use leaves the old configuration whole.
    const kept = new Map(sockets.map((socket) => [socket.key, socket]));
    const fresh: BoundSocket[] = [];
    const nextSockets: BoundSocket[] = [];
    try {
      for (const [index, handler] of next.handlers.entries()) {
        const existing = kept.get(`${handler.config.address}:${handler.config.port}`);
        if (existing) {
          kept.delete(existing.key);
          nextSockets.push(existing);
        } else {
          const socket = await bindSocket(handler, index, logger);
          fresh.push(socket);
          nextSockets.push(socket);
        }
      }
    } catch (error) {
      await closeSockets(fresh);
      await end(next, { timeoutMs: 0, patient: false });
      throw error;
    }
    if (stopping) {
      await closeSockets(fresh);
      await end(next, { timeoutMs: 0, patient: false });
      throw new PosternError("POSTERN_RELOAD_REFUSED", "the server began stopping during the reload");
    }
    // The switch: synchronous, so no connection falls between two generations.
    nextSockets.forEach((socket, index) => {
      socket.handler = next.handlers[index]!.server;
    });
    const dropped = [...kept.values()];
    sockets = nextSockets;
    const previous = current;
    current = next;
    live.push(next);
    startTls(next);
    void closeSockets(dropped);
    for (const socket of dropped) logger.info({ listener: socket.info.name }, "listener no longer configured: closed");
    logger.info(
      { plugins: config.plugins.map((plugin) => plugin.name), listeners: addresses().map((address) => address.name) },
      "configuration reloaded",
    );
    retire(previous);
  };

  return {
    get config() {
      return current.config;
    },
    get context() {
      return current.context;
    },
    events,

    async start() {
      if (started) throw new Error("server already started");
      started = true;
      const generation = current;
      generation.handlers = await createHandlers(generation.config, generation.protocol, resolver, logger);
      await setUpPlugins(generation, logger);
      const bound: BoundSocket[] = [];
      try {
        for (const [index, handler] of generation.handlers.entries())
          bound.push(await bindSocket(handler, index, logger));
      } catch (error) {
        // What did bind must not stay bound behind a failed start.
        await closeSockets(bound);
        throw error;
      }
      sockets = bound;
      startTls(generation);
    },

    stop(stopOptions = {}) {
      stopping ??= (async () => {
        await reloads;
        const inFlight = live.reduce((count, generation) => count + generation.inFlight.size, 0);
        logger.info({ inFlight }, "shutting down");
        for (const generation of live) generation.hurried = true;
        const closed = closeSockets(sockets);
        await Promise.all(
          [...live].map((generation) =>
            end(generation, {
              timeoutMs: stopOptions.timeoutMs ?? generation.config.shutdownTimeoutMs,
              patient: false,
            }),
          ),
        );
        await closed;
        logger.info("stopped");
      })();
      return stopping;
    },

    reload(input) {
      const next = reloads.then(() => swapIn(input));
      reloads = next.catch(() => undefined);
      return next;
    },

    async reloadTls() {
      await current.tlsReloader?.reload();
    },

    addresses,
    hookTable: () => current.context.hookTable(),
  };
}
