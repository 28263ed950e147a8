// Redis for tests. A redis-server of the test's own (Debian's redis-server) on a free loopback
// port, in a temp folder, persisting nothing, that an outage test may kill, freeze and start again;
// and key prefixes for the shared Redis at REDIS_URL, which tests never stop and only ever touch
// under their own prefix. Nothing starts and ioredis is not loaded until a function is called, so
// the kit loads on machines without redis-server (or ioredis).
import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { type Daemon, freePort, makeTempDir, startDaemon } from "./daemon.ts";

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

/** Starts Debian's redis-server on a free 127.0.0.1 port; resolves once it answers PING. */
export async function startRedisServer(options: { binary?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = await makeTempDir("redis");
  const launch = () =>
    startDaemon({
      name: "redis-server",
      command: options.binary ?? "redis-server",
      args: [
        ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir],
        ...["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
      ],
      dir,
      startTimeoutMs: 20_000,
      ready: () => answersPing(port),
    });
  let daemon: Daemon | undefined;
  try {
    daemon = await launch();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const kill = async () => {
    await daemon?.kill();
    daemon = undefined;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return daemon?.pid;
    },
    kill,
    freeze: () => daemon?.pause(),
    thaw: () => daemon?.resume(),
    async restart() {
      await kill();
      daemon = await launch();
    },
    async stop() {
      if (daemon) await daemon.stop();
      daemon = undefined;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
