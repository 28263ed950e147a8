// Outcomes to counters: each TLS outcome outbound observes becomes +1 on its row, counted in
// memory and written to the store in one batch per flush, so a delivery never waits on it.
import type { Logger } from "@postern/core";
import type { TlsOutcome } from "@postern/outbound";
import { utcDay } from "./report.ts";
import { rowKey, type TlsResultRow, type TlsRptStore } from "./store.ts";

/** The counter an outcome adds to. Successes carry no hosts: reports only count them. */
export function rowOf(outcome: TlsOutcome): TlsResultRow {
  const success = outcome.result === "success";
  return {
    day: utcDay(outcome.at),
    policyDomain: outcome.policy.domain,
    policyType: outcome.policy.type,
    policyStrings: outcome.policy.strings,
    policyMxHost: outcome.policy.mxHost ?? "",
    result: outcome.result,
    sendingIp: success ? "" : (outcome.sendingIp ?? ""),
    receivingIp: success ? "" : (outcome.receivingIp ?? ""),
    receivingMx: success ? "" : (outcome.mxHost ?? ""),
    reasonCode: success ? "" : (outcome.reasonCode ?? ""),
    detail: success ? "" : (outcome.detail ?? ""),
    count: 1,
  };
}

export class OutcomeRecorder {
  readonly #store: TlsRptStore;
  readonly #log: Logger;
  readonly #includeNoPolicy: boolean;
  #pending = new Map<string, TlsResultRow>();
  #writing: Promise<void> = Promise.resolve();

  constructor(options: { store: TlsRptStore; log: Logger; includeNoPolicy: boolean }) {
    this.#store = options.store;
    this.#log = options.log;
    this.#includeNoPolicy = options.includeNoPolicy;
  }

  record(outcome: TlsOutcome): void {
    if (outcome.policy.type === "no-policy-found" && !this.#includeNoPolicy) return;
    const row = rowOf(outcome);
    const key = rowKey(row);
    const known = this.#pending.get(key);
    this.#pending.set(key, known ? { ...known, count: known.count + 1 } : row);
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
          for (const [key, row] of batch) {
            const known = this.#pending.get(key);
            this.#pending.set(key, known ? { ...known, count: known.count + row.count } : row);
          }
          this.#log.warn({ err: (error as Error).message, rows: batch.size }, "TLS-RPT counts not stored yet");
          throw error;
        }
      });
    return this.#writing;
  }
}
