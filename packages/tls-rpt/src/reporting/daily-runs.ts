// When daily reports go out: a flush of the counters at an interval, and an hourly check that,
// from a UTC hour on, runs the reports of finished days (the run itself finds what is due, so a
// run a failure cut short is simply done again at the next check). One run at a time.
import type { Logger } from "@postern/core";

const hourMs = 3_600_000;

export interface DailyRunsOptions<T> {
  /** Writes counted observations to the store (run before each report run, and at `flushInterval`). */
  readonly flush: () => Promise<void>;
  /** Sends what is due; `now` decides which day is today. */
  readonly run: (now: number) => Promise<T[]>;
  readonly log: Logger;
  /** Names the runs in log lines (e.g. "TLS-RPT"). */
  readonly what: string;
}

export class DailyRuns<T> {
  readonly #options: DailyRunsOptions<T>;
  readonly #timers: NodeJS.Timeout[] = [];
  #running: Promise<T[]> | undefined;

  constructor(options: DailyRunsOptions<T>) {
    this.#options = options;
  }

  /** Flushes, then runs; a call while a run is under way gets that run (a slow destination must not start a second). */
  run(now: number = Date.now()): Promise<T[]> {
    if (this.#running) return this.#running;
    const { flush, run } = this.#options;
    this.#running = flush()
      .then(() => run(now))
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  /** Starts the flush interval and, with `schedule`, the hourly check from `sendHourUtc` on. */
  start(options: { flushInterval: number; schedule: boolean; sendHourUtc: number }): void {
    const { flush, log, what } = this.#options;
    const flushing = setInterval(() => flush().catch(() => undefined), options.flushInterval);
    flushing.unref();
    this.#timers.push(flushing);
    if (!options.schedule) return;
    const check = () => {
      if (new Date().getUTCHours() < options.sendHourUtc) return;
      this.run().catch((error: Error) => log.error({ err: error.message }, `${what} run failed`));
    };
    const hourly = setInterval(check, hourMs);
    hourly.unref();
    this.#timers.push(hourly);
  }

  /** Stops the timers, waits for a run under way and writes the last counts (a failure is logged by the flush). */
  async stop(): Promise<void> {
    for (const timer of this.#timers.splice(0)) clearInterval(timer);
    await this.#running?.catch(() => undefined);
    await this.#options.flush().catch(() => undefined);
  }
}
