// Runs the real `postern` command as a child process, the way an operator would: Node with the
// dev-source condition on src/cli.ts. Every child started here is remembered so the test file's
// afterEach can kill what is still running, by PID.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const cliPath = fileURLToPath(new URL("../cli.ts", import.meta.url));
const running = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  stdout(): string;
  /** Resolves when a stderr line matches, rejects if the process exits first or after `timeoutMs`. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit status. */
  exited(timeoutMs?: number): Promise<CliResult>;
}

function spawnCli(args: string[], cwd: string, entry: string): ChildProcess {
  // process.execPath: the Node running the tests, i.e. the `node` on PATH under pnpm (Node 24,
  // which strips types); a system Node 20 elsewhere on PATH could not run src/cli.ts.
  const child = spawn(process.execPath, ["--conditions=dev-source", entry, ...args], {
    cwd,
    env: { ...process.env, NODE_OPTIONS: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  return child;
}

/** Starts `postern <args>` in `cwd`; `entry` is the script to run (src/cli.ts unless given). */
export function startCli(args: string[], cwd: string, entry: string = cliPath): RunningCli {
  const child = spawnCli(args, cwd, entry);
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    for (const listener of listeners) listener();
  });
  // "close" comes after "exit" once stdout and stderr have ended, so the output is complete.
  const closed = once(child, "close").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));

  return {
    child,
    pid: child.pid!,
    stderr: () => stderr,
    stdout: () => stdout,
    waitForStderr(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = stderr.match(pattern);
          if (!match) return;
          done();
          resolve(match);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no stderr line matching ${pattern} within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        const onClose = () => {
          done();
          reject(new Error(`postern exited before printing ${pattern}; stderr:\n${stderr}`));
        };
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("close", onClose);
        };
        listeners.add(check);
        child.once("close", onClose);
        check();
      });
    },
    async exited(timeoutMs = 15_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`postern did not exit within ${timeoutMs} ms; stderr:\n${stderr}`)),
          timeoutMs,
        );
      });
      try {
        const status = await Promise.race([closed, timeout]);
        return { ...status, stdout, stderr };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Runs a command that is expected to finish on its own (check, --help, …). */
export function runCli(args: string[], cwd: string, entry: string = cliPath): Promise<CliResult> {
  return startCli(args, cwd, entry).exited(30_000);
}

/** Kills every child still running (afterEach), by PID. */
export async function killRunningClis(): Promise<void> {
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      process.kill(child.pid, "SIGKILL");
      await once(child, "exit");
    }
  }
  running.clear();
}

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `postern-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** A loopback port that was free a moment ago (bound to port 0, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}
