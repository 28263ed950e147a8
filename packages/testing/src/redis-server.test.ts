// The private redis-server: it serves, dies on kill (connections refused), comes back empty on
// restart, and a machine without redis-server gets a clear error only when a test asks for one.
// Key clean-up on the shared Redis removes only the keys under the prefix it is given.
import { connect } from "node:net";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import {
  deleteRedisKeys,
  type RedisServer,
  sharedRedisUrl,
  startRedisServer,
  uniqueRedisPrefix,
} from "./redis-server.ts";

let server: RedisServer | undefined;
const clients: Redis[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await server?.stop();
  server = undefined;
});

function client(url: string): Redis {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on("error", () => undefined);
  clients.push(redis);
  return redis;
}

/** The error code a TCP connection to the port ends with (undefined when it connects). */
function connectionError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code));
  });
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("startRedisServer", () => {
  it("serves on its own loopback port, refuses connections once killed and restarts empty", async () => {
    server = await startRedisServer();
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    expect(server.port).not.toBe(6379);
    const before = client(server.url);
    await before.connect();
    await before.set("kept", "until a restart");
    expect(await before.get("kept")).toBe("until a restart");
    const pid = server.pid!;
    expect(isRunning(pid)).toBe(true);

    await server.kill();
    expect(server.pid).toBeUndefined();
    expect(isRunning(pid)).toBe(false);
    await expect(connectionError(server.port)).resolves.toBe("ECONNREFUSED");

    await server.restart();
    expect(server.pid).not.toBe(pid);
    const after = client(server.url);
    await after.connect();
    expect(await after.get("kept")).toBeNull();
  });

  it("freezes (commands go unanswered) and thaws", async () => {
    server = await startRedisServer();
    const redis = new Redis(server.url, { commandTimeout: 300, maxRetriesPerRequest: 0 });
    redis.on("error", () => undefined);
    clients.push(redis);
    expect(await redis.ping()).toBe("PONG");
    server.freeze();
    await expect(redis.ping()).rejects.toThrow(/timed out/i);
    server.thaw();
    expect(await redis.ping()).toBe("PONG");
  });

  it("says what is missing when there is no redis-server to start", async () => {
    await expect(startRedisServer({ binary: "/nonexistent/redis-server" })).rejects.toThrow(
      "redis-server could not be started (spawn /nonexistent/redis-server ENOENT); see tooling/ci/debian-packages.txt",
    );
  });
});

describe("deleteRedisKeys", () => {
  it("removes the keys under its prefix and no others", async () => {
    const prefix = uniqueRedisPrefix("testing:delete");
    const other = uniqueRedisPrefix("testing:delete");
    expect(prefix).toMatch(/^postern-test:testing:delete:[0-9a-f]{8}$/);
    expect(other).not.toBe(prefix);
    const redis = client(sharedRedisUrl);
    await redis.connect();
    // More keys than one SCAN step (COUNT 500) returns.
    const writes = redis.pipeline();
    for (let index = 0; index < 1_200; index++) writes.set(`${prefix}:${index}`, "x", "EX", 600);
    await writes.exec();
    await redis.set(`${other}:kept`, "x", "EX", 600);
    await deleteRedisKeys(prefix);
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
    expect(await redis.get(`${other}:kept`)).toBe("x");
    await redis.del(`${other}:kept`);
  });
});
