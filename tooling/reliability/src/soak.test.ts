// The soak's short version for CI (under a minute): the same mix as `pnpm soak`, sampled every
// 5 s after 15 s of warm-up, must show no growth beyond the bounds in soak/trend.ts (RSS 48 MB,
// heap after GC 12 MB, external 16 MB, 16 fds), no refusal, and relayed mail reaching the sink.
//   pnpm --filter @postern/reliability test:soak
import { describe, expect, it } from "vitest";
import { describeSoak, runSoak } from "./soak/run-soak.ts";

describe("soak (short)", () => {
  it("serves a mixed load for 45 s with no growth trend", async () => {
    const result = await runSoak({ durationMs: 45_000, intervalMs: 5000, warmupMs: 15_000 });
    console.log(describeSoak(result));
    expect(result.exit).toBe(0);
    expect(result.samples.length).toBeGreaterThanOrEqual(7);
    for (const load of [result.mx, result.submission]) {
      expect(load.permanent).toEqual([]);
      expect(load.temporary).toEqual([]);
      expect(load.hangs).toEqual([]);
      expect(load.acknowledged.size).toBeGreaterThan(20);
    }
    expect(result.delivered).toBeGreaterThan(0);
    for (const trend of result.trends) expect(trend.growth, `${trend.figure} growth`).toBeLessThanOrEqual(trend.bound);
  }, 120_000);
});
