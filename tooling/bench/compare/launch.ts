// Starting and stopping the servers compare.ts measures, each in its own process with a file
// descriptor limit high enough for 5,000 sessions.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { fileURLToPath } from "node:url";

export interface RunningServer {
  readonly port: number;
  /** The process whose memory is read (Postfix: the master, whose children are summed). */
  readonly pid: number;
  /** Several processes (RSS is the sum over the process tree, sampled). */
  readonly multiProcess: boolean;
  /** Postern's Maildir root, when it stores to one. */
  readonly maildirRoot?: string;
  /** Messages its next hop (the relay rows' smtp-sink) has received so far. */
  delivered?(): number;
  /** A full garbage collection in the server; resolves with its RSS after it (Node servers we wrote). */
  gc?(): Promise<number>;
  stop(): Promise<void>;
}

/** Runs `command` through sh with the soft fd limit raised (to the hard limit if 65536 is not allowed). */
export function spawnWithFdLimit(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; ipc?: boolean; logFile?: string } = {},
): ChildProcess {
  const raise = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"';
  const output = options.logFile ? openSync(options.logFile, "a") : "inherit";
  try {
    return spawn("sh", ["-c", raise, "sh", command, ...args], {
      env: options.env ?? process.env,
      stdio: ["ignore", output, output, ...(options.ipc ? (["ipc"] as const) : [])],
    });
  } finally {
    if (typeof output === "number") closeSync(output);
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once the server on `port` sends its 220 greeting. */
export async function waitForGreeting(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const greeted = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: "127.0.0.1" });
      socket.setTimeout(2000, () => {
        socket.destroy();
        resolve(false);
      });
      socket.once("data", (chunk) => {
        socket.end("QUIT\r\n");
        resolve(chunk.toString().startsWith("220"));
      });
      socket.once("error", () => resolve(false));
    });
    if (greeted) return;
    if (Date.now() > deadline) throw new Error(`no SMTP greeting on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Signals the process, then SIGKILL if it has not exited in time. */
export async function terminate(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  if (!(await exited(child, 10_000))) {
    child.kill("SIGKILL");
    await exited(child, 5000);
  }
}

type Reply = { type: string; [key: string]: unknown };

function nextMessage(child: ChildProcess, types: string[]): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: Reply) => {
      if (!types.includes(message.type)) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(message);
    };
    const onExit = (code: number | null) => {
      child.off("message", onMessage);
      reject(new Error(`server process exited (${code}) before answering`));
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

export type StartResult = RunningServer | { unavailable: string };

/** Starts one of our Node server scripts (postern-server.ts, bare-server.ts) and waits for "ready". */
export async function startNodeServer(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<StartResult> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const child = spawnWithFdLimit(process.execPath, ["--conditions=dev-source", "--expose-gc", path, ...args], {
    ipc: true,
    env: { ...process.env, ...env },
  });
  const ready = await nextMessage(child, ["ready", "unavailable"]);
  if (ready.type === "unavailable") {
    await exited(child, 5000);
    return { unavailable: String(ready.reason) };
  }
  return {
    port: Number(ready.port),
    pid: child.pid!,
    multiProcess: false,
    ...(typeof ready.root === "string" ? { maildirRoot: ready.root } : {}),
    async gc() {
      const answer = nextMessage(child, ["gc"]);
      child.send({ type: "gc" });
      return Number((await answer).rss);
    },
    async stop() {
      child.send({ type: "stop" });
      if (!(await exited(child, 15_000))) await terminate(child, "SIGKILL");
    },
  };
}

/**
 * Starts a server that is not ours (Haraka, smtp-sink) and waits for its greeting. Its output goes
 * to `logFile` (start-up chatter would bury the report); the end of it is shown if it fails to start.
 */
export async function startForeignServer(
  command: string,
  args: string[],
  port: number,
  options: { env?: NodeJS.ProcessEnv; logFile: string },
): Promise<RunningServer> {
  const child = spawnWithFdLimit(command, args, options);
  const failed = exited(child, 30_000).then((done) => {
    if (done) throw new Error(`${command} exited (${child.exitCode ?? child.signalCode}) before listening`);
  });
  try {
    await Promise.race([waitForGreeting(port, 30_000), failed]);
  } catch (error) {
    const output = readFileSync(options.logFile, "utf8").split("\n").slice(-20).join("\n");
    await terminate(child);
    throw new Error(`${(error as Error).message}; its output ends:\n${output}`);
  }
  return { port, pid: child.pid!, multiProcess: false, stop: () => terminate(child) };
}
