// The outbound filesystem queue on its own: writers that enqueue a message, claim it, complete it
// (delivered) and start again, as the relay does with no network in between. What enqueue and
// removal cost in disk flushes and CPU, apart from SMTP on either side.
//   node --conditions=dev-source tooling/bench/queue-store.ts [writers=20] [seconds=3] [bytes=10240]
// BENCH_QUEUE_BEFORE=<an earlier checkout of this repository> runs its FsQueueStore beside this
// tree's, interleaved round by round (before/after in one run). Three rounds; each store gets a
// new spool directory under the system's temporary folder, removed at the end.
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { FsQueueStore } from "@postern/outbound";

const writers = Number(process.argv[2] ?? 20);
const seconds = Number(process.argv[3] ?? 3);
const bytes = Number(process.argv[4] ?? 10_240);
const rounds = 3;
const body = Buffer.alloc(bytes, "x");

type StoreClass = typeof FsQueueStore;
const trees: { label: string; Store: StoreClass }[] = [{ label: "this tree", Store: FsQueueStore }];
const before = process.env.BENCH_QUEUE_BEFORE;
if (before) {
  const module = (await import(pathToFileURL(join(before, "packages/outbound/src/index.ts")).href)) as {
    FsQueueStore: StoreClass;
  };
  trees.push({ label: before, Store: module.FsQueueStore });
}

let sequence = 0;
async function round(Store: StoreClass): Promise<{ rate: number; cpuMs: number }> {
  const dir = await mkdtemp(join(tmpdir(), "postern-bench-queue-"));
  const store = new Store({ dir });
  await store.open();
  const cpuBefore = process.cpuUsage();
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const worker = async (n: number) => {
    while (Date.now() < deadline) {
      const id = `B${(++sequence).toString(36)}`;
      await store.enqueue(
        {
          id,
          from: "bench@example.org",
          createdAt: Date.now(),
          size: body.length,
          requireTls: false,
          smtpUtf8: false,
          bodyType: "8bitmime",
          kind: "relay",
        },
        [{ address: `user${n}@bench.test` }],
        body,
      );
      // The claim takes whatever is due: another writer's message as often as this one's.
      for (const claim of await store.claim({ worker: "bench", limit: 1, leaseMs: 60_000 })) {
        const indexes = claim.recipients.map((recipient) => recipient.index);
        await store.complete(
          "bench",
          claim.message.id,
          indexes.map((index) => ({ index, result: "delivered", reply: { code: 250, status: "2.0.0", text: "ok" } })),
        );
      }
      done++;
    }
  };
  await Promise.all(Array.from({ length: writers }, (_, n) => worker(n)));
  const cpu = process.cpuUsage(cpuBefore);
  await store.close();
  await rm(dir, { recursive: true, force: true });
  return { rate: done / seconds, cpuMs: (cpu.user + cpu.system) / 1000 / done };
}

console.log(
  `queue store: ${writers} writers, ${bytes}-byte bodies, enqueue → claim → complete, ${rounds} rounds of ${seconds} s; load average ${loadavg()
    .map((value) => value.toFixed(2))
    .join(" ")}`,
);
const results = new Map(trees.map((tree) => [tree.label, [] as { rate: number; cpuMs: number }[]]));
await round(FsQueueStore); // warm-up
for (let n = 0; n < rounds; n++) {
  for (const tree of trees) results.get(tree.label)!.push(await round(tree.Store));
}
for (const [label, runs] of results) {
  console.log(
    `${label}: ${runs.map((run) => run.rate.toFixed(0)).join(", ")} msg/s; CPU ${runs
      .map((run) => run.cpuMs.toFixed(3))
      .join(", ")} ms per message (this process: the main thread and libuv's pool)`,
  );
}
