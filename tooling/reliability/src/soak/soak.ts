// The bounded soak as a script: 30 minutes by default, shorter by argument; prints a line per
// sample, then the figures with the trend verdict, and writes the plot.
//   pnpm --filter @postern/reliability soak                 (30 minutes, plot in soak.svg)
//   pnpm --filter @postern/reliability soak -- --minutes 5 --interval 10 --plot /tmp/soak.svg
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { renderSvg } from "./plot.ts";
import { describeSoak, runSoak } from "./run-soak.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "30" },
    interval: { type: "string", default: "10" },
    warmup: { type: "string", default: "60" },
    plot: { type: "string", default: fileURLToPath(new URL("../../soak.svg", import.meta.url)) },
  },
});
const minutes = Number(values.minutes);
const intervalSeconds = Number(values.interval);
if (!(minutes > 0 && minutes <= 30)) throw new Error("--minutes: expected a number of minutes from 0 to 30");
if (!(intervalSeconds >= 1)) throw new Error("--interval: expected seconds ≥ 1");

console.log(
  `soak: ${minutes} min, a sample every ${intervalSeconds} s, warm-up ${values.warmup} s left out of the trend`,
);
const result = await runSoak({
  durationMs: minutes * 60_000,
  intervalMs: intervalSeconds * 1000,
  warmupMs: Number(values.warmup) * 1000,
  progress: (line) => console.log(line),
});
console.log(describeSoak(result));
await writeFile(
  values.plot,
  renderSvg(
    result.samples,
    `postern soak: ${minutes} min, MX + submission (STARTTLS, AUTH) + relay via PostgreSQL queue + PostgreSQL store`,
  ),
);
console.log(`plot: ${values.plot}`);
const growing = result.trends.filter((trend) => trend.growing);
process.exitCode = growing.length > 0 || result.exit !== 0 ? 1 : 0;
