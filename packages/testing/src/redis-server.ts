// Redis for tests. A redis-server of the test's own (Debian's redis-server) on a free loopback
// port, in a temp folder, persisting nothing, that an outage test may kill, freeze and start again;
// and key prefixes for the shared Redis at REDIS_URL, which tests never stop and only ever touch
// under their own prefix. Nothing starts and ioredis is not loaded until a function is called, so
// the kit loads on machines without redis-server (or ioredis).
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The shared Redis every suite uses under its own key prefix (REDIS_URL, default 127.0.0.1:6379). */
export const sharedRedisUrl: string = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A key prefix no other test file or run uses: `postern-test:<scope>:<random>`. */
export function uniqueRedisPrefix(scope: string): string {
  return `postern-test:${scope}:${randomUUID().slice(0, 8)}`;
}

/** Deletes every key under `prefix:` from the Redis at `url` (needs ioredis, loaded on the first call). */
export async function deleteRedisKeys(prefix: string, url: string = sharedRedisUrl): Promise<void> {
  const { Redis } = await import("ioredis");
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** A redis-server of the test's own. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** The PID of the running server; undefined once killed or stopped. */
  readonly pid: number | undefined;
  /** SIGKILL: Redis is gone (connections refused). */
  kill(): Promise<void>;
  /** SIGSTOP: connections are accepted by the kernel and nothing answers (a hung server). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** Kills it if it runs and starts it again on the same port, empty. */
  restart(): Promise<void>;
  /** SIGTERM, then removes its folder. */
  stop(): Promise<void>;
}

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One PING in RESP; true on +PONG (what redis-server answers once it serves commands). */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let reply = "";
    socket.setEncoding("latin1");
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk: string) => {
      reply += chunk;
      if (!reply.includes("\r\n")) return;
      socket.destroy();
      resolve(reply.startsWith("+PONG"));
    });
    socket.once("error", () => resolve(false));
  });
}

// Servers (and folders) a test left behind go when the process exits normally, not outlive it.
const running = new Set<ChildProcess>();
const folders = new Set<string>();
let cleanupRegistered = false;
function cleanUpAtExit(): void {
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  process.once("exit", () => {
    for (const child of running) child.kill("SIGKILL");
    for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  });
}

/** Starts Debian's redis-server on a free 127.0.0.1 port; resolves once it answers PING. */
export async function startRedisServer(options: { binary?: string } = {}): Promise<RedisServer> {
  const binary = options.binary ?? "redis-server";
  const port = await freeLoopbackPort();
  cleanUpAtExit();
  const dir = await mkdtemp(join(tmpdir(), "postern-redis-"));
  folders.add(dir);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async () => {
    const started = spawn(
      binary,
      [
        ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir],
        ...["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
      ],
      { cwd: dir, stdio: ["ignore", "ignore", "pipe"] },
    );
    let failure: Error | undefined;
    let stderr = "";
    started.once("error", (error) => {
      failure = error;
    });
    started.stderr?.setEncoding("utf8").on("data", (text: string) => {
      stderr = (stderr + text).slice(-2_000);
    });
    child = started;
    running.add(started);
    exited = new Promise((resolve) =>
      started.once("close", () => {
        running.delete(started);
        resolve();
      }),
    );
    for (let waited = 0; !(await answersPing(port)); waited += 50) {
      const gone = failure !== undefined || started.exitCode !== null || started.signalCode !== null;
      if (gone || waited > 20_000) {
        started.kill("SIGKILL");
        const why = failure?.message ?? (stderr.trim() || "no answer to PING");
        throw new Error(
          `${binary} on 127.0.0.1:${port} did not start (${why}); Debian's redis-server package provides it`,
        );
      }
      await sleep(50);
    }
  };

  const end = async (signal: NodeJS.Signals) => {
    const server = child;
    child = undefined;
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    if (signal === "SIGTERM") server.kill("SIGCONT"); // a frozen server would never see SIGTERM
    server.kill(signal);
    await exited;
  };

  try {
    await launch();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    folders.delete(dir);
    throw error;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    kill: () => end("SIGKILL"),
    freeze: () => void child?.kill("SIGSTOP"),
    thaw: () => void child?.kill("SIGCONT"),
    async restart() {
      await end("SIGKILL");
      await launch();
    },
    async stop() {
      await end("SIGTERM");
      await rm(dir, { recursive: true, force: true });
      folders.delete(dir);
    },
  };
}
