// Loaded into the `postern start` process under soak (node --import): every interval it takes a
// full collection (the process runs with --expose-gc) and appends one JSON line with RSS, heap,
// external memory, open file descriptors and the event-loop delay seen since the last sample.
// Only node: built-ins, so the server's own code is unchanged by being measured.
import { appendFileSync, readdirSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

const file = process.env.POSTERN_SOAK_SAMPLES;
const intervalMs = Number(process.env.POSTERN_SOAK_INTERVAL_MS ?? 10_000);

if (file) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const started = Date.now();
  const gc = (globalThis as { gc?: () => void }).gc;
  const timer = setInterval(() => {
    const eventLoop = {
      p50Ms: delay.percentile(50) / 1e6,
      p99Ms: delay.percentile(99) / 1e6,
      maxMs: delay.max / 1e6,
    };
    gc?.();
    const memory = process.memoryUsage();
    // After the forced collection, so its pause is not counted as the server's delay.
    delay.reset();
    let fds = -1;
    try {
      fds = readdirSync("/proc/self/fd").length;
    } catch {
      // Not Linux: no fd count.
    }
    appendFileSync(
      file,
      `${JSON.stringify({
        atMs: Date.now() - started,
        rssMb: memory.rss / 2 ** 20,
        heapUsedMb: memory.heapUsed / 2 ** 20,
        externalMb: memory.external / 2 ** 20,
        fds,
        eventLoop,
      })}\n`,
    );
  }, intervalMs);
  timer.unref();
}
