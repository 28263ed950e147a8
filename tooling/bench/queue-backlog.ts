// The filesystem queue's bookkeeping with a backlog of deferred messages (a destination that is
// down): how much CPU one delivery's queue calls take — claim, complete, and the nextDue the
// runner asks when nothing else is due — as the backlog grows. No network, no delivery: the
// store's own cost, timed around its calls.
//   node --conditions=dev-source tooling/bench/queue-backlog.ts [backlogs=0,1000,5000,20000]
// BENCH_BEFORE=<an earlier checkout of this repository> runs its FsQueueStore beside this tree's,
// taking turns, for before/after in one run. Bounded: 400 deliveries per backlog and store.
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { FsQueueStore, MessageEnvelope } from "@postern/outbound";

const backlogs = (process.argv[2] ?? "0,1000,5000,20000").split(",").map(Number);
const deliveries = 400;
const body = Buffer.from("Subject: backlog\r\n\r\nx\r\n");

type StoreClass = new (options: { dir: string }) => FsQueueStore;
const trees: { name: string; Store: StoreClass }[] = [
  { name: "this tree", Store: (await import("@postern/outbound")).FsQueueStore },
];
if (process.env.BENCH_BEFORE) {
  const path = join(process.env.BENCH_BEFORE, "packages/outbound/src/queue/fs-store.ts");
  trees.push({ name: process.env.BENCH_BEFORE, Store: (await import(path)).FsQueueStore as StoreClass });
}

let sequence = 0;
function envelope(): MessageEnvelope {
  sequence++;
  return {
    id: `B${String(sequence).padStart(12, "0")}`,
    from: "sender@example.org",
    createdAt: Date.now(),
    size: body.length,
    requireTls: false,
    smtpUtf8: false,
    bodyType: "7bit",
    kind: "relay",
  };
}

/** µs of CPU (user + system) per delivery cycle: enqueue is outside the timed part. */
async function measure(
  Store: StoreClass,
  backlog: number,
): Promise<{ claim: number; complete: number; nextDue: number }> {
  const dir = await mkdtemp(join(tmpdir(), "postern-queue-backlog-"));
  const store = new Store({ dir });
  await store.open();
  try {
    // The backlog: deferred for an hour, as after a destination went down.
    // (200 at a time: they share the fsyncs of msg/.)
    for (let i = 0; i < backlog; i += 200) {
      const batch = Array.from({ length: Math.min(200, backlog - i) }, (_, n) =>
        store.enqueue(envelope(), [{ address: `r${i + n}@down.test` }], body),
      );
      await Promise.all(batch);
    }
    for (;;) {
      const claims = await store.claim({ worker: "w", limit: 500, leaseMs: 60_000 });
      if (claims.length === 0) break;
      const reply = { code: 451, status: "4.4.1", text: "down" };
      await Promise.all(
        claims.map((claim) =>
          store.complete(
            "w",
            claim.message.id,
            claim.recipients.map((r) => ({
              index: r.index,
              result: "deferred" as const,
              reply,
              retryAfterMs: 3_600_000,
            })),
          ),
        ),
      );
    }
    const totals = { claim: 0, complete: 0, nextDue: 0 };
    const cpu = () => {
      const usage = process.cpuUsage();
      return usage.user + usage.system;
    };
    for (let i = 0; i < deliveries; i++) {
      await store.enqueue(envelope(), [{ address: `new${i}@up.test` }], body);
      let started = cpu();
      const [claim] = await store.claim({ worker: "w", limit: 20, leaseMs: 60_000 });
      totals.claim += cpu() - started;
      started = cpu();
      await store.complete("w", claim!.message.id, [
        { index: 0, result: "delivered", reply: { code: 250, status: "2.0.0", text: "ok" } },
      ]);
      totals.complete += cpu() - started;
      started = cpu();
      await store.nextDue();
      totals.nextDue += cpu() - started;
    }
    return {
      claim: totals.claim / deliveries,
      complete: totals.complete / deliveries,
      nextDue: totals.nextDue / deliveries,
    };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const started = performance.now();
console.log(`filesystem queue bookkeeping per delivery (µs CPU), load average ${loadavg()[0]!.toFixed(2)}`);
console.log("backlog  store                          claim  complete  nextDue");
for (const backlog of backlogs) {
  for (const tree of trees) {
    const result = await measure(tree.Store, backlog);
    console.log(
      `${String(backlog).padStart(7)}  ${tree.name.padEnd(29)} ${result.claim.toFixed(0).padStart(6)}  ${result.complete.toFixed(0).padStart(8)}  ${result.nextDue.toFixed(0).padStart(7)}`,
    );
  }
}
console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s, load average after ${loadavg()[0]!.toFixed(2)})`);
