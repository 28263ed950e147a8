// Fault injection under load: the Redis that @postern/rate-limit shares its counters through is
// killed and started again while `postern start` takes mail. The documented policy
// (redis.onError): "defer" answers 4xx while Redis is gone (fail closed) and serves again once it
// is back; "allow" keeps taking mail. The Redis server is the test's own, on its own port.
//   pnpm --filter @postern/reliability test:faults
import { join } from "node:path";
import { type RedisServer, startRedisServer } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acknowledgedMore, refusedMore, startFaultLoad } from "./support/fault-load.ts";
import { startFaultServer } from "./support/fault-server.ts";
import { replySummary } from "./support/reply-summary.ts";
import { checkStored, readMaildir } from "./support/stored-mail.ts";

const recipient = "user@fault.test";
let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

function serverWith(onError: "defer" | "allow") {
  return startFaultServer(`redis-${onError}`, (dir) => ({
    plugins: [
      {
        package: "@postern/rate-limit",
        options: {
          limits: [
            { kind: "concurrent", key: "ip", limit: 1000 },
            { kind: "messages", key: "ip", limit: "1000000/1h" },
          ],
          redis: { url: redis.url, keyPrefix: `fault-${onError}`, timeoutMs: 500, onError },
        },
      },
      { package: "@postern/recipients", options: { domains: ["fault.test"] } },
      { package: "@postern/store-maildir", options: { root: join(dir, "maildir") } },
    ],
  }));
}

describe.each(["defer", "allow"] as const)("Redis killed and restarted under load (onError: %s)", (onError) => {
  it("follows the policy while Redis is gone, recovers by itself, and stores every acknowledged message", async () => {
    const server = await serverWith(onError);
    const load = startFaultLoad({ port: server.port, sessions: 4, recipients: [recipient], tag: `redis-${onError}` });
    try {
      await acknowledgedMore(load, 20, 30_000);
      await redis.kill();
      if (onError === "defer") {
        await refusedMore(load, 4, 30_000);
      } else {
        // Mail keeps flowing while Redis is gone.
        await acknowledgedMore(load, 20, 30_000);
      }
      const refusedWhileDown = load.temporary.length;
      await redis.restart();
      await acknowledgedMore(load, 20, 60_000);
      await load.stop();
      const { exit } = await server.stop();
      expect(exit, server.process.output()).toBe(0);
      console.log(`Redis killed (onError: ${onError}): ${replySummary(load)}`);

      expect(load.hangs).toEqual([]);
      expect(load.permanent).toEqual([]);
      if (onError === "allow") expect(refusedWhileDown).toBe(0);
      for (const refusal of load.temporary) expect(refusal.text).toMatch(/^4\.7\.[01] /);
      const check = checkStored(load, await readMaildir(join(server.dir, "maildir"), recipient), [recipient]);
      expect(check.problems).toEqual([]);
    } finally {
      await load.stop();
      await server.cleanup();
    }
  });
});
