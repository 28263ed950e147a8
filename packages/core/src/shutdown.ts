// Graceful shutdown: stop accepting, tell idle sessions 421, let transactions in DATA finish
// (bounded by shutdownTimeoutMs; past it they get 421, never 250), wait for close hooks, then
// close plugins in reverse config order.
import type { Logger } from "pino";
import type { ServerConfig } from "./config.ts";
import type { OpenListener } from "./listeners.ts";
import { coreReplies } from "./reply.ts";
import type { SessionState } from "./session-state.ts";

export interface ShutdownState {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly listeners: readonly OpenListener[];
  readonly sessions: Map<string, SessionState>;
  readonly inFlight: Set<string>;
  readonly closing: Set<Promise<void>>;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function shutDown(state: ShutdownState): Promise<void> {
  const { config, logger, listeners, sessions, inFlight, closing } = state;
  logger.info({ inFlight: inFlight.size }, "shutting down");
  const closed = listeners.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
  // Sessions not inside DATA are told now. A session inside DATA gets its reply first, then 421 on
  // its next command (smtp-server answers that once closing has begun).
  const closeIdle = () => {
    for (const session of sessions.values()) {
      if (inFlight.has(session.id)) continue;
      session.connection?.send(coreReplies.shuttingDown.code, coreReplies.shuttingDown.message);
      session.connection?.close();
    }
  };
  closeIdle();
  const deadline = Date.now() + config.shutdownTimeoutMs;
  while (inFlight.size > 0 && Date.now() < deadline) await pause(25);
  closeIdle();
  await Promise.all(closed);
  // smtp-server runs onClose a tick after each socket closes; wait (briefly) for every session's
  // close hooks before closing the plugins they use.
  const closeHooksDeadline = Date.now() + 2000;
  while (sessions.size > 0 && Date.now() < closeHooksDeadline) await pause(10);
  await Promise.all(closing);
  for (const plugin of [...config.plugins].reverse()) {
    try {
      await plugin.close?.();
    } catch (error) {
      logger.error({ err: error, plugin: plugin.name }, "plugin close failed");
    }
  }
  logger.info("stopped");
}
