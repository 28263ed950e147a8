// The long fuzzing run as a script: 100,000 mixed sessions (every kind in cases.ts) against one
// in-process server, 12 at a time, printing progress every 1,000 and the figures at the end.
// Exits non-zero on any failure, a logged server error, or a malformed message stored.
//   pnpm --filter @postern/reliability fuzz:long                        (100,000 sessions)
//   pnpm --filter @postern/reliability fuzz:long -- --sessions 5000 --seed 7 --concurrency 8
import { parseArgs } from "node:util";
import { describeFigures, runFuzzSessions } from "./run-fuzz.ts";
import { startFuzzTarget } from "./target.ts";

const { values } = parseArgs({
  options: {
    sessions: { type: "string", default: "100000" },
    concurrency: { type: "string", default: "12" },
    seed: { type: "string", default: "18" },
  },
});
const target = await startFuzzTarget();
try {
  const started = Date.now();
  const figures = await runFuzzSessions(target, {
    sessions: Number(values.sessions),
    concurrency: Number(values.concurrency),
    seed: Number(values.seed),
    progress: (done, partial) =>
      console.log(
        `${done} sessions, ${((Date.now() - started) / 1000).toFixed(0)} s, failures ${partial.failureCount}, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`,
      ),
  });
  console.log(describeFigures(figures));
  process.exitCode = figures.failureCount > 0 || figures.serverErrors > 0 || figures.anonymous.malformed > 0 ? 1 : 0;
} finally {
  await target.stop();
}
