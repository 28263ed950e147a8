// Is there a growth trend? A least-squares slope over the samples after warm-up, and the growth
// from the mean of the first third to the mean of the last third (robust to one noisy sample),
// judged against a stated bound per figure.

export interface Sample {
  atMs: number;
  rssMb: number;
  heapUsedMb: number;
  externalMb: number;
  fds: number;
  eventLoop: { p50Ms: number; p99Ms: number; maxMs: number };
}

export interface Trend {
  figure: string;
  unit: string;
  first: number;
  last: number;
  min: number;
  max: number;
  /** Least-squares slope, per hour. */
  slopePerHour: number;
  /** Mean of the last third minus mean of the first third. */
  growth: number;
  bound: number;
  growing: boolean;
}

export const figures = [
  { figure: "RSS", unit: "MB", pick: (sample: Sample) => sample.rssMb, bound: 48 },
  { figure: "heap used (after GC)", unit: "MB", pick: (sample: Sample) => sample.heapUsedMb, bound: 12 },
  { figure: "external + buffers", unit: "MB", pick: (sample: Sample) => sample.externalMb, bound: 16 },
  { figure: "open fds", unit: "", pick: (sample: Sample) => sample.fds, bound: 16 },
] as const;

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);

function slope(points: { x: number; y: number }[]): number {
  const mx = mean(points.map((point) => point.x));
  const my = mean(points.map((point) => point.y));
  let numerator = 0;
  let denominator = 0;
  for (const point of points) {
    numerator += (point.x - mx) * (point.y - my);
    denominator += (point.x - mx) ** 2;
  }
  return denominator === 0 ? 0 : numerator / denominator;
}

/** Trends over `samples`, skipping the first `warmup` (JIT, pools and caches filling). */
export function trends(samples: Sample[], warmup: number): Trend[] {
  const steady = samples.slice(Math.min(warmup, Math.max(0, samples.length - 2)));
  const third = Math.max(1, Math.floor(steady.length / 3));
  return figures.map(({ figure, unit, pick, bound }) => {
    const values = steady.map(pick);
    const growth = mean(values.slice(-third)) - mean(values.slice(0, third));
    return {
      figure,
      unit,
      first: values[0] ?? 0,
      last: values.at(-1) ?? 0,
      min: Math.min(...values),
      max: Math.max(...values),
      slopePerHour: slope(steady.map((sample, index) => ({ x: sample.atMs / 3_600_000, y: values[index]! }))),
      growth,
      bound,
      growing: growth > bound,
    };
  });
}
