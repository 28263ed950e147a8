// The server side of memory.ts: a Postern server in its own process, so its RSS is its own.
// Stores each message by streaming message.stream() to a file (fsync'd), like a store would.
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { accept, createLogger, createServer } from "@postern/core";

const dir = await mkdtemp(join(tmpdir(), "postern-bench-memory-"));
let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 5);

const server = createServer(
  {
    hostname: "bench.test",
    listeners: [{ address: "127.0.0.1", port: 1 }],
    limits: { maxMessageSize: "64MB" },
    spoolDir: join(dir, "spool"),
    plugins: [
      { name: "bench:claim", hooks: { rcptTo: () => accept({ route: "local" }) } },
      {
        name: "bench:file-store",
        hooks: {
          async queue(transaction, message) {
            const path = join(dir, `${transaction.id}.eml`);
            await pipeline(message.stream(), createWriteStream(path, { flush: true }));
            await rm(path);
            return accept();
          },
        },
      },
    ],
  },
  { logger: createLogger({ level: "warn" }) },
);
server.config.listeners[0]!.port = 0;
await server.start();

process.on("message", async (request: { type: string }) => {
  if (request.type === "reset") {
    globalThis.gc?.();
    peakRss = process.memoryUsage().rss;
    process.send!({ type: "reset", rss: peakRss });
  } else if (request.type === "peak") {
    process.send!({ type: "peak", rss: peakRss });
  } else if (request.type === "stop") {
    clearInterval(sampler);
    await server.stop();
    await rm(dir, { recursive: true, force: true });
    process.exit(0);
  }
});
process.send!({ type: "ready", port: server.addresses()[0]!.port });
