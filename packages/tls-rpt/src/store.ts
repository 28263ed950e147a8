// What the plugin keeps between outcomes and reports: counters, not events. Every TLS outcome
// of a UTC day falls into one row per (policy domain, policy, result, sending IP, receiving IP,
// receiving MX) whose count grows, so a busy day is a few hundred rows, not a million; a report
// is those rows of one policy domain and day. Stores: FileTlsRptStore (one node),
// PgTlsRptStore (nodes sharing PostgreSQL). A report is claimed before it is sent, so two nodes
// never send the same one.
import type { TlsFailureType, TlsPolicyType } from "@postern/outbound";

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

/** A report waiting to be sent: a policy domain with counts on a day nobody reported yet. */
export interface PendingReport {
  readonly day: string;
  readonly policyDomain: string;
}

export interface TlsRptStore {
  open(): Promise<void>;
  close(): Promise<void>;
  /** Adds the rows' counts to the stored ones (rows with the same key are one counter). */
  add(rows: readonly TlsResultRow[]): Promise<void>;
  /** Days before `beforeDay` (exclusive) with counts and no report claimed yet, per policy domain. */
  pending(beforeDay: string): Promise<PendingReport[]>;
  /** The counters of one policy domain and day. */
  rows(day: string, policyDomain: string): Promise<TlsResultRow[]>;
  /** Takes the report of (day, domain) for this node; false when another already has it. */
  claim(day: string, policyDomain: string, reportId: string): Promise<boolean>;
  /** Gives a claimed report back (nothing could be sent), so a later run tries it again. */
  release(day: string, policyDomain: string): Promise<void>;
  /** Deletes counters and report marks of days before `beforeDay`. */
  prune(beforeDay: string): Promise<void>;
}
