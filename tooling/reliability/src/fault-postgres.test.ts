// Fault injection under load: PostgreSQL restarted (fast shutdown) and killed (SIGKILL to every
// backend) while `postern start` stores mail in @postern/store-postgres (local recipients) and
// queues it in @postern/outbound's PostgreSQL queue (relayed recipients). The PostgreSQL server is
// the test's own (initdb in a temp folder, its own port), never the shared one.
//   pnpm --filter @postern/reliability test:faults
import { PgQueueStore } from "@postern/outbound";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acknowledgedMore, type FaultLoad, refusedMore, startFaultLoad } from "./support/fault-load.ts";
import { type FaultServer, startFaultServer } from "./support/fault-server.ts";
import { type PostgresInstance, startPostgres } from "./support/postgres-instance.ts";
import { replySummary } from "./support/reply-summary.ts";
import { checkStored, readPostgresMail, readQueue } from "./support/stored-mail.ts";

const local = "user@fault.test";
const remote = "someone@remote.test";
const mailSchema = "fault_mail";
const queueSchema = "fault_queue";

let postgres: PostgresInstance;
let server: FaultServer;
let load: FaultLoad;

beforeAll(async () => {
  postgres = await startPostgres();
  server = await startFaultServer("postgres", () => ({
    plugins: [
      { package: "@postern/recipients", options: { domains: ["fault.test"], relay: { networks: ["127.0.0.0/8"] } } },
      {
        package: "@postern/store-postgres",
        options: { connectionString: postgres.url, schema: mailSchema, connectionTimeoutMs: 2000 },
      },
      {
        package: "@postern/outbound",
        options: {
          queue: { type: "postgres", connectionString: postgres.url, schema: queueSchema },
          worker: { enabled: false },
        },
      },
    ],
  }));
  load = startFaultLoad({ port: server.port, sessions: 4, recipients: [local, remote], tag: "pg" });
  await acknowledgedMore(load, 20, 30_000);
});

afterAll(async () => {
  await load?.stop();
  await server?.cleanup();
  await postgres?.stop();
});

describe("PostgreSQL faults under load", () => {
  it("answers 4xx while PostgreSQL restarts, and carries on by itself", async () => {
    await postgres.restart();
    await acknowledgedMore(load, 20, 60_000);
  });

  it("answers 4xx while PostgreSQL is killed and down, and carries on once it is back", async () => {
    await postgres.kill();
    await refusedMore(load, 4, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await postgres.start();
    await acknowledgedMore(load, 20, 60_000);
  });

  it("stored every acknowledged message exactly as sent, nothing half, and told no client 5xx", async () => {
    await load.stop();
    const { exit } = await server.stop();
    expect(exit, server.process.output()).toBe(0);
    expect(load.hangs, "commands that got no reply").toEqual([]);
    expect(load.permanent, "5xx replies for a fault of ours").toEqual([]);
    expect(load.temporary.length + load.dropped.count, "the faults were felt").toBeGreaterThan(0);

    const stored = [
      ...(await readPostgresMail(postgres.url, mailSchema, local)),
      ...(await readQueue(new PgQueueStore({ connectionString: postgres.url, schema: queueSchema }))),
    ];
    const check = checkStored(load, stored, [local, remote]);
    expect(check.problems).toEqual([]);
    console.log(
      `PostgreSQL faults: ${replySummary(load)}\n  ${check.storedUnacknowledged} stored though not acknowledged`,
    );
  });
});
