// The shape every daily-report store shares (TLS-RPT, DMARC aggregate reports): counters, not
// events. Each observation of a UTC day adds to one row per distinct set of reported fields, so a
// busy day is a few hundred rows, not a million; a report is the rows of one policy domain and
// day. A report is claimed before it is sent, so two nodes never send the same one.

/** The fields every counter has; the rest are the report's own. */
export interface CounterRow {
  /** UTC day, "YYYY-MM-DD". */
  readonly day: string;
  readonly policyDomain: string;
  readonly count: number;
}

/** A report waiting to be sent: a policy domain with counts on a day nobody reported yet. */
export interface PendingReport {
  readonly day: string;
  readonly policyDomain: string;
}

export interface CounterStore<Row extends CounterRow> {
  open(): Promise<void>;
  close(): Promise<void>;
  /** Adds the rows' counts to the stored ones (rows with the same key are one counter). */
  add(rows: readonly Row[]): Promise<void>;
  /** Days before `beforeDay` (exclusive) with counts and no report claimed yet, per policy domain. */
  pending(beforeDay: string): Promise<PendingReport[]>;
  /** The counters of one policy domain and day. */
  rows(day: string, policyDomain: string): Promise<Row[]>;
  /** Takes the report of (day, domain) for this node; false when another already has it. */
  claim(day: string, policyDomain: string, reportId: string): Promise<boolean>;
  /** Gives a claimed report back (nothing could be sent), so a later run tries it again. */
  release(day: string, policyDomain: string): Promise<void>;
  /** Deletes counters and report marks of days before `beforeDay`. */
  prune(beforeDay: string): Promise<void>;
}

/** What makes two rows one counter: every field but `count` (and any the report keeps one example of). */
export type RowKey<Row> = (row: Row) => string;
