// Outcomes to counters: each TLS outcome outbound observes becomes +1 on its row, counted in
// memory and written to the store in one batch per flush (the shared CounterRecorder), so a
// delivery never waits on it.
import type { Logger } from "@postern/core";
import type { TlsOutcome } from "@postern/outbound";
import { CounterRecorder } from "./reporting/counter-recorder.ts";
import { utcDay } from "./reporting/days.ts";
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
  readonly #counter: CounterRecorder<TlsResultRow>;
  readonly #includeNoPolicy: boolean;

  constructor(options: { store: TlsRptStore; log: Logger; includeNoPolicy: boolean }) {
    this.#counter = new CounterRecorder({
      store: options.store,
      key: rowKey,
      log: options.log,
      what: "TLS-RPT counts",
    });
    this.#includeNoPolicy = options.includeNoPolicy;
  }

  record(outcome: TlsOutcome): void {
    if (outcome.policy.type === "no-policy-found" && !this.#includeNoPolicy) return;
    this.#counter.count(rowOf(outcome));
  }

  /** Writes what was counted since the last flush; counts a failed write keeps for the next one. */
  flush(): Promise<void> {
    return this.#counter.flush();
  }
}
