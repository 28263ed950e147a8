// One line per fault case: what the clients were told, grouped, for the test's output.
import type { FaultLoad } from "./fault-load.ts";

export function replySummary(load: FaultLoad): string {
  const counts = new Map<string, number>();
  for (const entry of [...load.temporary, ...load.permanent]) {
    const key = `${entry.stage} ${entry.code} ${entry.text.split("\n")[0]!.slice(0, 60)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const lines = [...counts].sort((a, b) => b[1] - a[1]).map(([key, count]) => `  ${count}× ${key}`);
  return [
    `${load.acknowledged.size} acknowledged, ${load.temporary.length} 4xx, ${load.permanent.length} 5xx, ${load.hangs.length} hangs, ${load.dropped.count} dropped connections`,
    ...lines,
  ].join("\n");
}
