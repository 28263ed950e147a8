// A worker of `postern start --workers N`: a process the primary forked (node:cluster) that serves
// the configuration like `postern start` alone does — its own plugins, its own sessions — on
// listening sockets it shares with the other workers. It tells the primary when it serves (or
// that it could not start), stops gracefully when the primary asks or when it gets SIGTERM/SIGINT
// itself, and ends at once only on the primary's "stop-now".
import cluster from "node:cluster";
import { constants } from "node:os";
import type { ServeOptions, StopWatch } from "../serve.ts";
import { serve } from "../serve.ts";
import { isPrimaryMessage, type WorkerMessage, workerCountVariable, workerIndexVariable } from "./messages.ts";

export function isWorkerProcess(): boolean {
  return cluster.isWorker && process.env[workerIndexVariable] !== undefined;
}

export function workerIndex(): number {
  return Number(process.env[workerIndexVariable]);
}

export function workerCount(): number {
  return Number(process.env[workerCountVariable]);
}

function tellPrimary(message: WorkerMessage): void {
  process.send?.(message);
}

const stopSignals = ["SIGTERM", "SIGINT"] as const;

/**
 * Signals and the primary's requests. A signal and the primary's "stop" usually come together
 * (systemd signals every process of the unit; Ctrl-C signals the process group): the first of
 * them starts the graceful stop, the others change nothing.
 */
function workerStopWatch(say: (line: string) => void): StopWatch {
  let serving = false;
  let resolveRequested!: (line: string) => void;
  let requestedAlready = false;
  const requested = new Promise<string>((resolve) => {
    resolveRequested = resolve;
  });
  const request = (line: string, exitCode: number) => {
    if (requestedAlready) return;
    requestedAlready = true;
    if (!serving) {
      // Nothing to finish yet.
      process.exit(exitCode);
    }
    resolveRequested(line);
  };
  const onSignal = (signal: (typeof stopSignals)[number]) =>
    request(`${signal} received: stopping (finishing messages in flight)`, 128 + constants.signals[signal]);
  const onMessage = (message: unknown) => {
    if (!isPrimaryMessage(message)) return;
    if (message.type === "postern:stop") request("stop requested: finishing messages in flight", 0);
    else {
      say("stopping now");
      process.exit(message.exitCode);
    }
  };
  for (const signal of stopSignals) process.on(signal, onSignal);
  process.on("message", onMessage);
  return {
    requested,
    serving() {
      serving = true;
    },
    dispose() {
      for (const signal of stopSignals) process.off(signal, onSignal);
      process.off("message", onMessage);
    },
  };
}

/** Serves as worker `workerIndex()`; resolves to its exit code. */
export function runWorker(options: Pick<ServeOptions, "values" | "setupTimeoutMs">): Promise<number> {
  const index = workerIndex();
  const say = (line: string) => process.stderr.write(`postern[worker ${index}]: ${line}\n`);
  return serve({
    ...options,
    say,
    stop: workerStopWatch(say),
    // The primary printed the preflight's findings; a worker says only what stops it.
    preflight: "errors",
    workers: workerCount(),
    logFields: { worker: index },
    onServing: (_server, _loaded, addresses) => tellPrimary({ type: "postern:ready", addresses }),
  });
}
