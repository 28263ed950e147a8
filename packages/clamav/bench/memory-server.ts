// The server side of memory.ts: Postern with @postern/clamav in its own process, so its RSS is its
// own. Messages are scanned by clamd, then read once by a queue plugin that keeps nothing.
import { accept, createLogger, createServer } from "@postern/core";
import clamav, { clamavResult } from "../src/index.ts";

/** clamd's address, or "none" to measure the same server without the plugin. */
const address = process.argv[2]!;
let peakRss = process.memoryUsage().rss;
/** How long the last scan took (clamav's recorded result). */
let scanMs: number | undefined;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 5);

const server = createServer(
  {
    hostname: "bench.test",
    listeners: [{ address: "127.0.0.1", port: 1 }],
    limits: { maxMessageSize: "64MB" },
    plugins: [
      { name: "bench:claim", hooks: { rcptTo: () => accept({ route: "local" }) } },
      ...(address === "none"
        ? []
        : [clamav({ address, maxScanSize: "40MB", timeouts: { connectMs: 2000, scanMs: 120_000 } })]),
      {
        name: "bench:drain",
        hooks: {
          async queue(transaction, message) {
            const result = transaction.results.get(clamavResult);
            if (result && "durationMs" in result) scanMs = result.durationMs;
            for await (const _chunk of message.stream());
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
    process.send!({ type: "peak", rss: peakRss, scanMs });
  } else if (request.type === "stop") {
    clearInterval(sampler);
    await server.stop();
    process.exit(0);
  }
});
process.send!({ type: "ready", port: server.addresses()[0]!.port });
