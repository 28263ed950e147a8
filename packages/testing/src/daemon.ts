// Runs a Debian daemon for a test: in the foreground, with a configuration in a temporary folder,
// on loopback ports chosen here, stopped by its PID afterwards (never a system-wide service).
// Nothing is spawned until startDaemon() is called, so the kit loads where no daemon is installed.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface Daemon {
  readonly pid: number;
  /** The temporary folder holding its configuration, sockets and logs. */
  readonly dir: string;
  /** What it printed (stdout and stderr), for failure messages. */
  output(): string;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** SIGSTOP: the daemon keeps its sockets but answers nothing (a hung daemon). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGKILL, and waits for the process to be gone (a daemon that dies). */
  kill(): Promise<void>;
  /** SIGTERM, SIGKILL after `graceMs`; removes the folder. */
  stop(graceMs?: number): Promise<void>;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** True when something accepts connections on 127.0.0.1:port (or the Unix socket at `path`). */
export async function canConnect(where: number | { path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = typeof where === "number" ? connect({ host: "127.0.0.1", port: where }) : connect(where);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `postern-${prefix}-`));
}

const running = new Set<ChildProcess>();
let exitHookAdded = false;
/** A test process that exits with daemons still running takes them along (added on the first start). */
function killAtExit(started: ChildProcess): void {
  running.add(started);
  if (exitHookAdded) return;
  exitHookAdded = true;
  process.once("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
}

/**
 * Starts `command` and waits until `ready()` says yes (polled), at most `startTimeoutMs`; a
 * daemon that exits first, or is not ready in time, fails with what it printed.
 */
export async function startDaemon(options: {
  name: string;
  command: string;
  args: string[];
  dir: string;
  ready: () => Promise<boolean>;
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}): Promise<Daemon> {
  const child = spawn(options.command, options.args, {
    cwd: options.dir,
    stdio: ["ignore", "pipe", "pipe"],
    env: options.env ?? process.env,
  });
  killAtExit(child);
  let printed = "";
  child.stdout!.on("data", (bytes: Buffer) => {
    printed += bytes.toString();
  });
  child.stderr!.on("data", (bytes: Buffer) => {
    printed += bytes.toString();
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      running.delete(child);
      resolve();
    }),
  );
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once("spawn", () => resolve(undefined));
    child.once("error", resolve);
  });
  if (spawned)
    throw new Error(`${options.name} could not be started (${spawned.message}); see tooling/ci/debian-packages.txt`);
  const daemon: Daemon = {
    pid: child.pid!,
    dir: options.dir,
    output: () => printed,
    get exited() {
      return exited;
    },
    pause() {
      child.kill("SIGSTOP");
    },
    resume() {
      child.kill("SIGCONT");
    },
    async kill() {
      if (exited) return;
      child.kill("SIGKILL");
      await exit;
    },
    async stop(graceMs = 3000) {
      if (!exited) {
        child.kill("SIGCONT");
        child.kill("SIGTERM");
        const stopped = await Promise.race([exit.then(() => true), sleep(graceMs).then(() => false)]);
        if (!stopped) {
          child.kill("SIGKILL");
          await exit;
        }
      }
      await rm(options.dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  while (!(await options.ready())) {
    if (exited || Date.now() > deadline) {
      await daemon.stop(0);
      throw new Error(
        `${options.name} ${exited ? "exited" : "was not ready"} ${exited ? "during start" : `within ${options.startTimeoutMs ?? 30_000} ms`}:\n${printed}`,
      );
    }
    await sleep(25);
  }
  return daemon;
}
