// `postern start`: serves the config (or the embedded default) until SIGTERM/SIGINT — alone
// (serve.ts), or with --workers N as the primary of N worker processes that share the listeners
// (workers/primary.ts); a forked worker runs this command too and serves (workers/worker.ts).
import cluster from "node:cluster";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configOptions, configOptionsHelp } from "../config-args.ts";
import { listeningLines, serve } from "../serve.ts";
import { defaultSetupTimeoutMs } from "../setup-deadline.ts";
import { signalStopWatch } from "../shutdown-signals.ts";
import { defaultThreadPoolSize, maxThreadPoolSize, threadPoolState } from "../thread-pool.ts";
import { UsageError } from "../usage-error.ts";
import { runPrimary } from "../workers/primary.ts";
import { isWorkerProcess, runWorker } from "../workers/worker.ts";
import { workerCountFrom } from "../workers/worker-count.ts";

const options = {
  ...configOptions,
  "setup-timeout": { type: "string" },
  workers: { type: "string" },
  "thread-pool": { type: "string" },
} as const;

function say(line: string): void {
  process.stderr.write(`postern: ${line}\n`);
}

function setupTimeoutMs(text: string | undefined): number {
  if (text === undefined) return defaultSetupTimeoutMs;
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!(seconds > 0 && seconds <= 3600)) {
    throw new UsageError(`--setup-timeout: expected seconds, more than 0 and at most 3600 (got "${text}")`);
  }
  return Math.round(seconds * 1000);
}

/** thread-pool.ts sized the pool before anything else ran; here its problems become messages. */
function checkThreadPool(): void {
  const pool = threadPoolState();
  if (!pool) return;
  if (pool.size === undefined) {
    const expected = `expected a number of threads from 1 to ${maxThreadPoolSize}`;
    if (pool.source === "--thread-pool") throw new UsageError(`--thread-pool: ${expected} (got "${pool.text}")`);
    say(`UV_THREADPOOL_SIZE: ${expected} (got "${pool.text}"); libuv decides the size`);
  } else if (!pool.applied) {
    say(
      `the thread pool was running before postern could size it; it keeps its size (set UV_THREADPOOL_SIZE=${pool.size} in the environment instead)`,
    );
  }
}

export const start: Command = {
  name: "start",
  summary: "run the mail server (the config file, or the embedded default)",
  usage: `Usage: postern start [-c <file>] [--workers <n>|auto] [--thread-pool <n>] [--setup-timeout <seconds>]
                     [--domain <domain>]... [--listen <addr[:port]>] [--port <port>]

Checks what the server depends on (TLS files, the spool and Maildir roots, DKIM keys: the checks of
\`postern check\` but the DNS probe), starts the server and serves until SIGTERM or SIGINT, then
stops gracefully: messages being received are finished, idle sessions get 421. A second signal
stops at once. SIGHUP reloads the configuration: a bad one is named in one line and the running
one keeps serving; a good one serves new sessions while sessions in flight finish on the old one.
An uncaught error is logged, the server stops accepting, messages in flight get 10 s to finish
(then 421), and the process exits 70 for its supervisor to restart it.

With --workers N, N worker processes serve the same listeners (one per core is the usual choice;
"auto" counts the CPUs) and this process looks after them: signals go to every worker (SIGTERM and
SIGINT stop them gracefully, SIGHUP reloads each), a worker that dies is started again, and one that
dies more than 5 times within 60 s stops the server with exit 70. Each worker has its own plugins
and memory: state they must share lives in shared stores — the outbound queue in PostgreSQL, rate
limits and greylisting in Redis (\`postern check --workers N\` says what is not shared).

Without a config file the embedded default runs: it listens on 127.0.0.1:2525 (plaintext), accepts
mail for localhost and every --domain, and stores it in ./data/maildir/<domain>/<user>/.

Options:
${configOptionsHelp}
  --workers <n>|auto    worker processes serving the listeners (default 1: this process serves)
  --thread-pool <n>     libuv threads per process, for file system calls (every fsync), DNS lookups
                        and hashing (default ${defaultThreadPoolSize}, or UV_THREADPOOL_SIZE when set; Node's own is 4)
  --setup-timeout <s>   how long each plugin's setup may take before start fails naming it
                        (default ${defaultSetupTimeoutMs / 1000})
  -h, --help            show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const setupTimeout = setupTimeoutMs(values["setup-timeout"]);
    const workers = workerCountFrom(values.workers);
    if (isWorkerProcess()) return runWorker({ values, setupTimeoutMs: setupTimeout });
    if (cluster.isWorker) throw new UsageError("postern start runs in a cluster worker it did not fork");
    checkThreadPool();
    if (workers > 1) return runPrimary({ values, workers, threadPool: threadPoolState() });
    return serve({
      values,
      setupTimeoutMs: setupTimeout,
      stop: signalStopWatch(say),
      say,
      preflight: "report",
      workers: 1,
      onServing: (_server, loaded, addresses) => {
        for (const line of listeningLines(loaded, addresses)) say(line);
      },
    });
  },
};
