// What the plugin keeps between outcomes and reports: counters, not events. Every TLS outcome
// of a UTC day falls into one row per (policy domain, policy, result, sending IP, receiving IP,
// receiving MX) whose count grows, so a busy day is a few hundred rows, not a million; a report
// is those rows of one policy domain and day. Stores: FileTlsRptStore (one node),
// PgTlsRptStore (nodes sharing PostgreSQL). A report is claimed before it is sent, so two nodes
// never send the same one.
import type { TlsFailureType, TlsPolicyType } from "@postern/outbound";
import type { CounterStore } from "./reporting/counter-store.ts";

/** One counter: the sessions of a day that share every field but `count`. */
export interface TlsResultRow {
  /** UTC day, "YYYY-MM-DD". */
  readonly day: string;
  readonly policyDomain: string;
  readonly policyType: TlsPolicyType;
  readonly policyStrings: readonly string[];
  /** The policy's mx-host ("" when none). */
  readonly policyMxHost: string;
  readonly result: "success" | TlsFailureType;
  /** "" when unknown (and always "" for successes, which reports count without details). */
  readonly sendingIp: string;
  readonly receivingIp: string;
  readonly receivingMx: string;
  readonly reasonCode: string;
  /** One example of what happened, for the report's additional information. */
  readonly detail: string;
  readonly count: number;
}

/** The fields that make a counter; `detail` and `count` are not among them. */
export function rowKey(row: Omit<TlsResultRow, "detail" | "count">): string {
  return JSON.stringify([
    row.day,
    row.policyDomain,
    row.policyType,
    row.policyStrings,
    row.policyMxHost,
    row.result,
    row.sendingIp,
    row.receivingIp,
    row.receivingMx,
    row.reasonCode,
  ]);
}

export type { PendingReport } from "./reporting/counter-store.ts";

export interface TlsRptStore extends CounterStore<TlsResultRow> {}
