// Runs fuzzed sessions of every kind (cases.ts, by weight) against one target, a few at a time,
// and gathers the figures: sessions per kind and outcome, known gaps met, failures with their
// input, memory, and errors the server logged. Inputs come from fast-check with a fixed seed, so a
// run can be repeated.
import fc from "fast-check";
import { megabytes, settledHeap, settledRss } from "../support/memory.ts";
import { type FuzzCase, fuzzCases } from "./cases.ts";
import type { FuzzTarget } from "./target.ts";

export interface FuzzFigures {
  sessions: number;
  durationMs: number;
  perCase: Record<string, { sessions: number; outcomes: Record<string, number>; knownGaps: Record<string, number> }>;
  failures: { case: string; input: string; error: string }[];
  failureCount: number;
  rssStartMb: number;
  rssEndMb: number;
  /** JS heap after full collections: a leak of the server's objects shows here. */
  heapStartMb: number;
  heapEndMb: number;
  serverErrors: number;
  anonymous: { stored: number; malformed: number };
}

export interface FuzzRunOptions {
  sessions: number;
  concurrency: number;
  seed: number;
  /** A session that takes longer than this is a hang. */
  sessionTimeoutMs?: number;
  progress?: (done: number, figures: FuzzFigures) => void;
}

/** mulberry32: a small seeded generator for picking the kind of each session. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const describeInput = (input: unknown) =>
  JSON.stringify(input, (_key, value) =>
    Buffer.isBuffer(value)
      ? value.toString("latin1")
      : value instanceof Uint8Array
        ? Buffer.from(value).toString("hex")
        : value,
  ).slice(0, 2000);

export async function runFuzzSessions(target: FuzzTarget, options: FuzzRunOptions): Promise<FuzzFigures> {
  const started = Date.now();
  const random = seeded(options.seed);
  const totalWeight = fuzzCases.reduce((sum, entry) => sum + entry.weight, 0);
  const figures: FuzzFigures = {
    sessions: 0,
    durationMs: 0,
    perCase: Object.fromEntries(
      fuzzCases.map(({ fuzzCase }) => [fuzzCase.name, { sessions: 0, outcomes: {}, knownGaps: {} }]),
    ),
    failures: [],
    failureCount: 0,
    rssStartMb: megabytes(await settledRss()),
    rssEndMb: 0,
    heapStartMb: megabytes(await settledHeap()),
    heapEndMb: 0,
    serverErrors: 0,
    anonymous: { stored: 0, malformed: 0 },
  };
  // Inputs per kind, generated in batches from the seed.
  const pending = new Map<string, unknown[]>();
  let batch = 0;
  const nextInput = (fuzzCase: FuzzCase<unknown>, index: number): unknown => {
    let queue = pending.get(fuzzCase.name);
    if (!queue || queue.length === 0) {
      queue = fc.sample(fuzzCase.arbitrary, { numRuns: 200, seed: options.seed + index * 1_000_003 + batch++ });
      pending.set(fuzzCase.name, queue);
    }
    return queue.pop();
  };
  const pick = (): [FuzzCase<unknown>, number] => {
    let roll = random() * totalWeight;
    for (const [index, entry] of fuzzCases.entries()) {
      roll -= entry.weight;
      if (roll < 0) return [entry.fuzzCase, index];
    }
    return [fuzzCases[0]!.fuzzCase, 0];
  };

  let next = 0;
  const worker = async () => {
    while (next < options.sessions) {
      const sessionNumber = next++;
      const [fuzzCase, index] = pick();
      const input = nextInput(fuzzCase, index);
      const entry = figures.perCase[fuzzCase.name]!;
      entry.sessions++;
      let timer: NodeJS.Timeout | undefined;
      try {
        const outcome = await Promise.race([
          fuzzCase.run(target, input, `s${options.seed}-${sessionNumber}`),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error("hang: the session did not end")),
              options.sessionTimeoutMs ?? 30_000,
            );
          }),
        ]);
        entry.outcomes[outcome.label] = (entry.outcomes[outcome.label] ?? 0) + 1;
        if (outcome.knownGap) entry.knownGaps[outcome.knownGap] = (entry.knownGaps[outcome.knownGap] ?? 0) + 1;
      } catch (error) {
        figures.failureCount++;
        if (figures.failures.length < 20) {
          figures.failures.push({
            case: fuzzCase.name,
            input: describeInput(input),
            error: String((error as Error).message ?? error).slice(0, 1000),
          });
        }
      } finally {
        clearTimeout(timer);
      }
      figures.sessions++;
      if (figures.sessions % 1000 === 0) {
        target.collectLogs();
        options.progress?.(figures.sessions, figures);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  figures.durationMs = Date.now() - started;
  target.collectLogs();
  figures.rssEndMb = megabytes(await settledRss());
  figures.heapEndMb = megabytes(await settledHeap());
  figures.serverErrors = target.errors().length;
  figures.anonymous = { stored: target.anonymous.stored, malformed: target.anonymous.malformed.length };
  return figures;
}

export function describeFigures(figures: FuzzFigures): string {
  const lines = [
    `${figures.sessions} sessions in ${(figures.durationMs / 1000).toFixed(1)} s (${((figures.sessions / figures.durationMs) * 1000).toFixed(0)}/s); failures ${figures.failureCount}; server errors logged ${figures.serverErrors}; heap after GC ${figures.heapStartMb.toFixed(1)} → ${figures.heapEndMb.toFixed(1)} MB, RSS ${figures.rssStartMb.toFixed(0)} → ${figures.rssEndMb.toFixed(0)} MB`,
    `messages stored by random command scripts: ${figures.anonymous.stored} (malformed: ${figures.anonymous.malformed})`,
  ];
  for (const [name, entry] of Object.entries(figures.perCase)) {
    const outcomes = Object.entries(entry.outcomes)
      .sort((a, b) => b[1] - a[1])
      .map(([label, count]) => `${label} ${count}`)
      .join(", ");
    lines.push(`  ${name.padEnd(10)} ${String(entry.sessions).padStart(7)}  ${outcomes}`);
    for (const [gap, count] of Object.entries(entry.knownGaps)) lines.push(`             known gap: ${gap} — ${count}`);
  }
  for (const failure of figures.failures.slice(0, 5))
    lines.push(`FAILED ${failure.case}: ${failure.error}\n  input: ${failure.input}`);
  return lines.join("\n");
}
