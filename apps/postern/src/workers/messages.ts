// What the primary of `postern start --workers N` and its workers tell each other over the
// cluster IPC channel. Stopping goes over IPC, not signals: systemd's default KillMode sends
// SIGTERM to every process of the unit at once, and a terminal's Ctrl-C reaches the whole
// process group, so a worker may get the operator's signal directly *and* the primary's request;
// both mean the same graceful stop, and only the primary's "stop-now" (after a second signal)
// ends a worker at once.
import type { ListeningAddress } from "@postern/core";

/** Primary → worker. */
export type PrimaryMessage = { type: "postern:stop" } | { type: "postern:stop-now"; exitCode: number };

/** Worker → primary. (A worker that cannot start says why on stderr and exits before "ready".) */
export type WorkerMessage = { type: "postern:ready"; addresses: ListeningAddress[] };

/** The environment variable that tells a forked process which worker it is (1 … N). */
export const workerIndexVariable = "POSTERN_WORKER";
/** …and how many workers there are. */
export const workerCountVariable = "POSTERN_WORKERS";

export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  const type = (message as { type?: unknown } | null)?.type;
  return type === "postern:stop" || type === "postern:stop-now";
}

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  const type = (message as { type?: unknown } | null)?.type;
  return type === "postern:ready";
}
