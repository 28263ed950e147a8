// The size of libuv's thread pool for `postern start`. Every fsync of a durable store, every
// other file system call, dns.lookup, zlib and asynchronous crypto (scrypt password hashes) waits
// for one of its threads, and Node starts 4: four deliveries fsyncing at once hold every thread,
// and the fifth — or a password check — waits behind them.
//
// libuv reads UV_THREADPOOL_SIZE once, when the first piece of work is queued, and the pool can't
// grow afterwards. So this module is the first thing cli.ts imports: its body runs before any
// other module's, and before anything has done asynchronous I/O. (Node 24 loads the module graph
// with synchronous reads, so no pool thread exists yet; sizeThreadPool checks that on Linux and
// says so when it is not the case, instead of silently running with 4.) Workers of
// `--workers N` inherit the variable, so each worker has a pool of this size.
import { readdirSync, readFileSync } from "node:fs";

/** Threads per process unless --thread-pool or UV_THREADPOOL_SIZE says otherwise. */
export const defaultThreadPoolSize = 16;
/** libuv's own ceiling (UV_THREADPOOL_SIZE is clamped to it). */
export const maxThreadPoolSize = 1024;

export interface ThreadPoolSetting {
  /** The size asked for; undefined when the value given is not a size (start reports it). */
  readonly size: number | undefined;
  /** Where it came from. */
  readonly source: "--thread-pool" | "UV_THREADPOOL_SIZE" | "default";
  /** The text given, for the error message. */
  readonly text: string | undefined;
}

export function parseThreadPoolSize(text: string): number | undefined {
  const size = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  return size >= 1 && size <= maxThreadPoolSize ? size : undefined;
}

/** What `postern start` would size the pool to, from its command line and environment. */
export function threadPoolSetting(argv: readonly string[], env: NodeJS.ProcessEnv): ThreadPoolSetting {
  let flag: string | undefined;
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (arg === "--") break;
    if (arg === "--thread-pool") flag = argv[index + 1] ?? "";
    else if (arg.startsWith("--thread-pool=")) flag = arg.slice("--thread-pool=".length);
  }
  if (flag !== undefined) return { size: parseThreadPoolSize(flag), source: "--thread-pool", text: flag };
  const fromEnv = env.UV_THREADPOOL_SIZE;
  if (fromEnv !== undefined && fromEnv !== "") {
    return { size: parseThreadPoolSize(fromEnv), source: "UV_THREADPOOL_SIZE", text: fromEnv };
  }
  return { size: defaultThreadPoolSize, source: "default", text: undefined };
}

/** Threads of this process that are libuv's pool (Linux names them "libuv-worker"); undefined elsewhere. */
export function runningPoolThreads(): number | undefined {
  try {
    return readdirSync("/proc/self/task").filter(
      (task) => readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim() === "libuv-worker",
    ).length;
  } catch {
    return undefined;
  }
}

export interface ThreadPoolState extends ThreadPoolSetting {
  /** False when the pool was already running, so the size could not take effect. */
  readonly applied: boolean;
}

let state: ThreadPoolState | undefined;

/** Sets UV_THREADPOOL_SIZE for `postern start` before anything queues work on the pool. */
export function sizeThreadPool(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ThreadPoolState {
  const setting = threadPoolSetting(argv, env);
  // Not a size: leave the variable alone; start refuses the flag with a usage error, and libuv
  // itself ignores an unusable UV_THREADPOOL_SIZE (start says so).
  if (setting.size === undefined) {
    state = { ...setting, applied: false };
    return state;
  }
  const running = runningPoolThreads();
  env.UV_THREADPOOL_SIZE = String(setting.size);
  state = { ...setting, applied: running === undefined || running === 0 };
  return state;
}

/** What sizeThreadPool did in this process (undefined when the command is not `start`). */
export function threadPoolState(): ThreadPoolState | undefined {
  return state;
}

// `postern start …`: size the pool now, at the top of the process.
if (process.argv[2] === "start") sizeThreadPool(process.argv.slice(3));
