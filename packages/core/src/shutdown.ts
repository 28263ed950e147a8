// Ending a generation of the server (its handlers, sessions and plugins): at shutdown, every
// generation after the sockets stop accepting; at a reload, the old one once new connections go to
// the new one. Idle sessions are told 421, transactions in DATA finish (bounded by
// shutdownTimeoutMs; past it they get 421, never 250), close hooks run, then the plugins close in
// reverse config order.

import type { Logger } from "pino";
import type { Plugin } from "./hooks.ts";
import { removeLeftoverFiles } from "./leftover-files.ts";
import type { ListenerHandler } from "./listeners.ts";
import { coreReplies } from "./reply.ts";
import type { SessionState } from "./session-state.ts";

export interface GenerationState {
  readonly plugins: readonly Plugin[];
  readonly handlers: readonly ListenerHandler[];
  readonly sessions: Map<string, SessionState>;
  readonly inFlight: Set<string>;
  readonly closing: Set<Promise<void>>;
  /** The generation's smtp-server callbacks (its session clock stops with it). */
  readonly protocol: { close(): void };
  /** Set when the server stops while this generation is being ended patiently: stop waiting for sessions. */
  hurried: boolean;
}

export interface EndOptions {
  readonly logger: Logger;
  /** How long transactions in DATA (and, when `patient`, whole sessions) may take. */
  readonly timeoutMs: number;
  /**
   * A reload's old generation: sessions may finish on their own (bounded by timeoutMs) before
   * the idle ones are told 421. At shutdown idle sessions are told at once.
   */
  readonly patient: boolean;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Tells sessions 421 and closes them: those not inside DATA, or (past the deadline) every one. */
function closeSessions(generation: GenerationState, options: { inDataToo: boolean }): void {
  for (const session of generation.sessions.values()) {
    if (!options.inDataToo && generation.inFlight.has(session.id)) continue;
    session.connection?.send(coreReplies.shuttingDown.code, coreReplies.shuttingDown.message);
    session.connection?.close();
  }
}

/** Ends one generation whose handlers get no new connections any more. */
export async function endGeneration(generation: GenerationState, options: EndOptions): Promise<void> {
  const { sessions, inFlight, closing } = generation;
  const deadline = Date.now() + options.timeoutMs;
  // smtp-server answers 421 to every command once its close() began (sessions in DATA get their
  // reply first), and drops sockets still in their PROXY header or TLS handshake. Its own
  // net.Server never listened, so close() returns at once.
  const closeHandlers = () => {
    for (const { server } of generation.handlers) server.close();
  };
  if (options.patient) {
    while (sessions.size > 0 && !generation.hurried && Date.now() < deadline) await pause(50);
  }
  closeHandlers();
  // Sessions not inside DATA are told now; one inside DATA gets its reply first, then 421.
  closeSessions(generation, { inDataToo: false });
  while (inFlight.size > 0 && Date.now() < deadline) await pause(25);
  // Past the deadline a transaction still in DATA is cut off: 421, never 250 (nothing was stored).
  closeSessions(generation, { inDataToo: true });
  // smtp-server runs onClose a tick after each socket closes; wait (briefly) for every session's
  // close hooks before closing the plugins they use.
  const closeHooksDeadline = Date.now() + 2000;
  while (sessions.size > 0 && Date.now() < closeHooksDeadline) await pause(10);
  await Promise.all(closing);
  generation.protocol.close();
  for (const plugin of [...generation.plugins].reverse()) {
    try {
      await plugin.close?.();
    } catch (error) {
      options.logger.error({ err: error, plugin: plugin.name }, "plugin close failed");
    }
  }
  const left = await removeLeftoverFiles();
  if (left.length > 0) options.logger.warn({ files: left }, "files could not be removed (the disk refused)");
}
