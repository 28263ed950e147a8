// The storage contract every Postern store meets (the test kit's conformance suite), run against
// outbound's queue hook: the queue is a store whose messages happen to leave again. The worker is
// off, so what the hook stored stays in the spool to be read back.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { describeStoreConformance } from "@postern/testing/vitest";
import outbound from "./index.ts";
import { FsQueueStore } from "./queue/fs-store.ts";
import type { QueueStore } from "./queue/store.ts";

/** The spool store, with a switch that makes the next write fail after its first bytes. */
function breakableStore(dir: string): { store: QueueStore; broken: { on: boolean } } {
  const inner = new FsQueueStore({ dir });
  const broken = { on: false };
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === "enqueue") {
        return (envelope: never, recipients: never, body: Readable | Buffer) => {
          if (!broken.on) return target.enqueue(envelope, recipients, body);
          let passed = 0;
          const failing = new Transform({
            transform(chunk: Buffer, _encoding, callback) {
              passed += chunk.length;
              if (passed > 64 * 1024) return callback(new Error("simulated disk failure"));
              callback(null, chunk);
            },
          });
          const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
          source.on("error", (error) => failing.destroy(error));
          return target.enqueue(envelope, recipients, source.pipe(failing));
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store: store as QueueStore, broken };
}

describeStoreConformance("@postern/outbound (filesystem spool)", {
  route: "relay",
  async createStore() {
    const dir = await mkdtemp(join(tmpdir(), "postern-outbound-contract-"));
    const { store, broken } = breakableStore(dir);
    return {
      plugin: outbound({ queue: { type: "custom", store }, worker: { enabled: false } }),
      async read(recipient) {
        // A second opener reads the files, as `postern queue` would, also after shutdown.
        const reader = new FsQueueStore({ dir, shared: true });
        await reader.open();
        try {
          const messages = await reader.list();
          const copies: Buffer[] = [];
          for (const message of messages) {
            if (!message.recipients.some((entry) => entry.address === recipient)) continue;
            const chunks: Buffer[] = [];
            for await (const chunk of await reader.body(message.id)) chunks.push(chunk as Buffer);
            copies.push(Buffer.concat(chunks));
          }
          return copies;
        } finally {
          await reader.close();
        }
      },
      async breakStorage() {
        broken.on = true;
      },
      async restore() {
        broken.on = false;
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
});
