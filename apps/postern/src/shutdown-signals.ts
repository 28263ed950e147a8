// SIGTERM / SIGINT handling for a running server: the first signal starts a graceful stop (the
// promise resolves with the signal's name); a second one means "now" and exits at once.
import { constants } from "node:os";

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
