// SIGTERM / SIGINT handling for a running server: the first signal starts a graceful stop (the
// promise resolves with the signal's name); a second one means "now" and exits at once. Until
// the server listens there is nothing to finish, so a signal during start-up stops at once (a
// setup that hangs must not need a second signal).
import { constants } from "node:os";
import type { StopWatch } from "./serve.ts";

const shutdownSignals = ["SIGTERM", "SIGINT"] as const;
export type ShutdownSignal = (typeof shutdownSignals)[number];

export interface ShutdownWatch {
  /** Resolves on the first SIGTERM or SIGINT. */
  readonly requested: Promise<ShutdownSignal>;
  /** Removes the handlers (after the server stopped). */
  dispose(): void;
}

export function watchShutdownSignals(onForced: (signal: ShutdownSignal) => void): ShutdownWatch {
  let received: ShutdownSignal | undefined;
  let resolveRequested!: (signal: ShutdownSignal) => void;
  const requested = new Promise<ShutdownSignal>((resolve) => {
    resolveRequested = resolve;
  });
  const handler = (signal: ShutdownSignal) => {
    if (received) {
      onForced(signal);
      // The shell convention for "killed by signal N".
      process.exit(128 + constants.signals[signal]);
    }
    received = signal;
    resolveRequested(signal);
  };
  for (const signal of shutdownSignals) process.on(signal, handler);
  return {
    requested,
    dispose() {
      for (const signal of shutdownSignals) process.off(signal, handler);
    },
  };
}

/** The stop watch of a process serving alone: signals, with start-up and second signals ending it at once. */
export function signalStopWatch(say: (line: string) => void): StopWatch {
  let serving = false;
  const shutdown = watchShutdownSignals((signal) => say(`${signal} again: stopping now`));
  void shutdown.requested.then((signal) => {
    if (serving) return;
    say(`${signal} during start-up: stopping`);
    process.exit(128 + constants.signals[signal]);
  });
  return {
    requested: shutdown.requested.then(
      (signal) => `${signal} received: stopping (finishing messages in flight; send ${signal} again to stop at once)`,
    ),
    serving() {
      serving = true;
    },
    dispose: shutdown.dispose,
  };
}
