// Observations to counters: each one becomes +1 on its row, counted in memory and written to the
// store in one batch per flush, so the mail path never waits on the store.
import type { Logger } from "@postern/core";
import type { CounterRow, CounterStore, RowKey } from "./counter-store.ts";

export class CounterRecorder<Row extends CounterRow> {
  readonly #store: CounterStore<Row>;
  readonly #key: RowKey<Row>;
  readonly #log: Logger;
  readonly #what: string;
  #pending = new Map<string, Row>();
  #writing: Promise<void> = Promise.resolve();

  /** `what` names the counts in the warning a failed write logs (e.g. "TLS-RPT counts"). */
  constructor(options: { store: CounterStore<Row>; key: RowKey<Row>; log: Logger; what: string }) {
    this.#store = options.store;
    this.#key = options.key;
    this.#log = options.log;
    this.#what = options.what;
  }

  /** Adds the row's count to its counter in memory. */
  count(row: Row): void {
    const key = this.#key(row);
    const known = this.#pending.get(key);
    this.#pending.set(key, known ? { ...known, count: known.count + row.count } : row);
  }

  /** Writes what was counted since the last flush; counts a failed write keeps for the next one. */
  flush(): Promise<void> {
    this.#writing = this.#writing
      .catch(() => undefined)
      .then(async () => {
        if (this.#pending.size === 0) return;
        const batch = this.#pending;
        this.#pending = new Map();
        try {
          await this.#store.add([...batch.values()]);
        } catch (error) {
          // Put the counts back (merged with any counted meanwhile) so none are lost.
          for (const row of batch.values()) this.count(row);
          this.#log.warn({ err: (error as Error).message, rows: batch.size }, `${this.#what} not stored yet`);
          throw error;
        }
      });
    return this.#writing;
  }
}
