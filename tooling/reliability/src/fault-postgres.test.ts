// Fault injection under load: PostgreSQL restarted (fast shutdown) and killed (SIGKILL to every
// backend) while `postern start` stores mail in @postern/store-postgres (local recipients), then
// again while it queues mail in @postern/outbound's PostgreSQL queue (relayed recipients). The
// PostgreSQL server is the test's own (initdb in a temp folder, its own port), never the shared one.
//   pnpm --filter @postern/reliability test:faults
import { PgQueueStore } from "@postern/outbound";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acknowledgedMore, refusedMore, startFaultLoad } from "./support/fault-load.ts";
import { startFaultServer } from "./support/fault-server.ts";
import { type PostgresInstance, startPostgres } from "./support/postgres-instance.ts";
import { replySummary } from "./support/reply-summary.ts";
import { checkStored, readPostgresMail, readQueue, type StoredCopy } from "./support/stored-mail.ts";

let postgres: PostgresInstance;
beforeAll(async () => {
  postgres = await startPostgres();
});
afterAll(async () => {
  await postgres?.stop();
});

interface PostgresStore {
  name: string;
  recipient: string;
  plugin(url: string): unknown;
  read(url: string): Promise<StoredCopy[]>;
}

const storePostgres: PostgresStore = {
  name: "@postern/store-postgres",
  recipient: "user@fault.test",
  plugin: (url) => ({
    package: "@postern/store-postgres",
    options: { connectionString: url, schema: "fault_mail", connectionTimeoutMs: 2000 },
  }),
  read: (url) => readPostgresMail(url, "fault_mail", "user@fault.test"),
};

const outboundQueue: PostgresStore = {
  name: "@postern/outbound (PostgreSQL queue)",
  recipient: "someone@remote.test",
  plugin: (url) => ({
    package: "@postern/outbound",
    options: { queue: { type: "postgres", connectionString: url, schema: "fault_queue" }, worker: { enabled: false } },
  }),
  read: (url) => readQueue(new PgQueueStore({ connectionString: url, schema: "fault_queue" })),
};

/** Restart, then kill and start again, under load; then read the store and check every promise. */
async function restartAndKill(store: PostgresStore): Promise<void> {
  const server = await startFaultServer("postgres", () => ({
    plugins: [
      { package: "@postern/recipients", options: { domains: ["fault.test"], relay: { networks: ["127.0.0.0/8"] } } },
      store.plugin(postgres.url),
    ],
  }));
  const load = startFaultLoad({ port: server.port, sessions: 4, recipients: [store.recipient], tag: "pg" });
  try {
    await acknowledgedMore(load, 20, 30_000, server.exited);
    await postgres.restart();
    await acknowledgedMore(load, 20, 60_000, server.exited);
    await postgres.kill();
    await refusedMore(load, 4, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await postgres.start();
    await acknowledgedMore(load, 20, 60_000, server.exited);

    await load.stop();
    const { exit } = await server.stop();
    expect(exit, server.process.output()).toBe(0);
    expect(load.hangs, "commands that got no reply").toEqual([]);
    expect(load.permanent, "5xx replies for a fault of ours").toEqual([]);
    expect(load.temporary.length + load.dropped.count, "the faults were felt").toBeGreaterThan(0);
    const check = checkStored(load, await store.read(postgres.url), [store.recipient]);
    expect(check.problems).toEqual([]);
    console.log(
      `PostgreSQL faults (${store.name}): ${replySummary(load)}\n  ${check.storedUnacknowledged} stored though not acknowledged`,
    );
  } finally {
    await load.stop();
    await server.cleanup();
    // A fault case that failed half-way may leave PostgreSQL down: the next case needs it.
    await postgres.start().catch(() => undefined);
  }
}

describe("PostgreSQL restarted and killed under load", () => {
  it("@postern/store-postgres: 4xx while it is gone, carries on by itself, every acknowledged message stored exactly", async () => {
    await restartAndKill(storePostgres);
  });

  // Finding 7 (README): the queue's checked-out client had no 'error' listener, so a restart while
  // an enqueue streamed the body stopped the whole server (exit 70). Fixed; this case keeps it so.
  it("@postern/outbound's PostgreSQL queue: the same", async () => {
    await restartAndKill(outboundQueue);
  });
});
