// The primary of `postern start --workers N`: it checks the configuration once, forks N workers
// with node:cluster, and looks after them. It serves no mail itself.
//
// The workers share every listening socket. The primary binds it (node:cluster asks it for the
// handle when a worker listens) and hands the socket itself to the workers, which accept from it
// directly (cluster.SCHED_NONE): the kernel gives each new connection to a worker waiting in
// accept, and the primary never touches a connection. Node's default on Linux (SCHED_RR) has the
// primary accept every connection and pass it to a worker over IPC: measured here with one
// message per connection that cost the primary ~0.15 ms of CPU per connection and 2 workers ran
// 1.4× slower than with SCHED_NONE on 2 cores (see tooling/bench/BENCHMARKS.md). Shared state
// lives in the shared stores (PostgreSQL, Redis); `postern check --workers N` names what is kept
// per process (preflight/workers.ts).
//
// Signals: SIGTERM/SIGINT stop every worker gracefully (over IPC; a second signal stops them at
// once), SIGHUP makes every worker reload the configuration. A worker that dies is started again
// with the same number after a pause (restart-budget.ts); one that keeps dying ends the server:
// every worker is stopped and the primary exits 70.
import cluster, { type Worker } from "node:cluster";
import { constants } from "node:os";
import type { ListeningAddress } from "@postern/core";
import { configRequestFrom } from "../config-args.ts";
import { loadConfig } from "../load-config.ts";
import { reportPreflight } from "../preflight/report.ts";
import { listeningLines } from "../serve.ts";
import { watchShutdownSignals } from "../shutdown-signals.ts";
import type { ThreadPoolState } from "../thread-pool.ts";
import { isWorkerMessage, type PrimaryMessage, workerCountVariable, workerIndexVariable } from "./messages.ts";
import { RestartBudget, type RestartPolicy } from "./restart-budget.ts";

/** The exit status when workers keep dying (sysexits.h EX_SOFTWARE, as crash-policy.ts). */
export const workersDyingExitCode = 70;

export interface PrimaryOptions {
  readonly values: Parameters<typeof configRequestFrom>[0];
  readonly workers: number;
  readonly threadPool: ThreadPoolState | undefined;
  readonly restartPolicy?: RestartPolicy;
}

interface Slot {
  readonly index: number;
  worker: Worker;
  ready: boolean;
  addresses: ListeningAddress[] | undefined;
  /** A restart waiting for its pause to end. */
  restartTimer: NodeJS.Timeout | undefined;
}

function say(line: string): void {
  process.stderr.write(`postern: ${line}\n`);
}

function describeExit(code: number | null, signal: string | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

function send(worker: Worker, message: PrimaryMessage): void {
  if (worker.isConnected()) worker.send(message);
}

export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { workers } = options;
  // What -c and other relative paths mean; loadConfig moves into the config's folder, and the
  // workers must read the command line the way it was meant.
  const startDir = process.cwd();
  const slots = new Map<number, Slot>();
  let serving = false;
  let stopping = false;
  let startFailure: string | undefined;
  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });
  let stopCode = 0;
  /** Workers that exited other than 0 while stopping. */
  let stopErrors = 0;

  const live = () => [...slots.values()].filter((slot) => !slot.worker.isDead());
  const stopAll = (code: number) => {
    stopping = true;
    stopCode = code;
    for (const slot of slots.values()) clearTimeout(slot.restartTimer);
    // A worker still starting has nothing to finish: stop it at once.
    for (const slot of live()) {
      send(slot.worker, slot.ready ? { type: "postern:stop" } : { type: "postern:stop-now", exitCode: 0 });
    }
    if (live().length === 0) finish(code);
  };

  const shutdown = watchShutdownSignals((signal) => {
    say(`${signal} again: stopping every worker now`);
    for (const slot of live())
      send(slot.worker, { type: "postern:stop-now", exitCode: 128 + constants.signals[signal] });
  });
  void shutdown.requested.then((signal) => {
    if (!serving) {
      say(`${signal} during start-up: stopping`);
      for (const slot of live()) send(slot.worker, { type: "postern:stop-now", exitCode: 0 });
      process.exit(128 + constants.signals[signal]);
    }
    say(
      `${signal} received: stopping ${workers} workers (finishing messages in flight; send ${signal} again to stop at once)`,
    );
    stopAll(0);
  });
  const onHangup = () => {
    const ready = live().filter((slot) => slot.ready);
    say(`SIGHUP: reloading the configuration in ${ready.length} worker${ready.length === 1 ? "" : "s"}`);
    for (const slot of ready) slot.worker.process.kill("SIGHUP");
  };

  const loaded = await loadConfig(configRequestFrom(options.values));
  const verdict = await reportPreflight(loaded, { network: false, strict: false, command: "postern start", workers });
  if (verdict.failed) {
    shutdown.dispose();
    return 1;
  }

  // Must be set before the first fork; see the top of this file.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ cwd: startDir });
  const budget = new RestartBudget(options.restartPolicy);
  let allReady!: () => void;
  const ready = new Promise<void>((resolve) => {
    allReady = resolve;
  });

  const fork = (index: number): Slot => {
    const worker = cluster.fork({ [workerIndexVariable]: String(index), [workerCountVariable]: String(workers) });
    const slot: Slot = slots.get(index) ?? {
      index,
      worker,
      ready: false,
      addresses: undefined,
      restartTimer: undefined,
    };
    Object.assign(slot, { worker, ready: false, addresses: undefined, restartTimer: undefined });
    slots.set(index, slot);
    worker.on("message", (message: unknown) => {
      if (!isWorkerMessage(message) || message.type !== "postern:ready") return;
      slot.ready = true;
      slot.addresses = message.addresses;
      if (serving) say(`worker ${index} (pid ${worker.process.pid}) serving`);
      else if ([...slots.values()].every((each) => each.ready)) allReady();
    });
    worker.on("exit", (code, signal) => onExit(slot, worker, code, signal));
    return slot;
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null) => {
    if (slot.worker !== worker) return;
    const pid = worker.process.pid;
    if (stopping) {
      if (code !== 0) stopErrors++;
      if (live().length === 0) finish(stopCode);
      return;
    }
    if (!serving) {
      // One worker could not start (it said why on stderr): the others are stopped too.
      startFailure ??= `worker ${slot.index} (pid ${pid}) ${describeExit(code, signal)} before it served: stopping`;
      say(startFailure);
      stopAll(1);
      allReady();
      return;
    }
    const decision = budget.died(slot.index);
    if (!decision.restart) {
      say(
        `worker ${slot.index} (pid ${pid}) ${describeExit(code, signal)}; it died ${decision.deaths} times within ${budget.policy.windowMs / 1000} s: stopping every worker (exit ${workersDyingExitCode})`,
      );
      stopAll(workersDyingExitCode);
      return;
    }
    say(
      `worker ${slot.index} (pid ${pid}) ${describeExit(code, signal)}; starting a new one in ${decision.delayMs / 1000} s`,
    );
    slot.ready = false;
    slot.restartTimer = setTimeout(() => {
      if (!stopping) fork(slot.index);
    }, decision.delayMs);
  };

  for (let index = 1; index <= workers; index++) fork(index);
  await ready;
  if (startFailure === undefined) {
    serving = true;
    process.on("SIGHUP", onHangup);
    const first = slots.get(1)!;
    for (const line of listeningLines(loaded, first.addresses ?? [])) say(line);
    const pool = options.threadPool?.size;
    say(
      `${workers} workers serving (pids ${[...slots.values()].map((slot) => slot.worker.process.pid).join(", ")})${pool ? `; ${pool} libuv threads each` : ""}`,
    );
  }

  const code = await finished;
  process.off("SIGHUP", onHangup);
  shutdown.dispose();
  if (code === 0 && stopErrors > 0) {
    say(`stopped (${stopErrors} worker${stopErrors === 1 ? "" : "s"} did not stop cleanly)`);
    return 1;
  }
  say(code === 0 ? "stopped" : `stopped (exit ${code})`);
  return code;
}
