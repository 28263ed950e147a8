// @postern/tls-rpt/reporting — the pieces every daily aggregate report shares (TLS-RPT here,
// DMARC in @postern/dmarc-reports): counters per policy domain and UTC day in a file or
// PostgreSQL store with claim-once reports, the in-memory counting in front of them, the daily
// schedule, the report mail and rua size limits. Nothing here knows what is counted.

export { CounterRecorder } from "./counter-recorder.ts";
export type { CounterRow, CounterStore, PendingReport, RowKey } from "./counter-store.ts";
export type { DailyRunsOptions } from "./daily-runs.ts";
export { DailyRuns } from "./daily-runs.ts";
export { addDays, dayRange, utcDay } from "./days.ts";
export { FileCounterStore } from "./file-counter-store.ts";
export type { PgCounterStoreOptions } from "./pg-counter-store.ts";
export { PgCounterStore } from "./pg-counter-store.ts";
export type { ReportMessage } from "./report-message.ts";
export { buildReportMessage } from "./report-message.ts";
export { dailyReportOptionFields } from "./schedule-options.ts";
export { base64Size, splitSizeLimit } from "./size-limit.ts";
export type { CounterStoreOption } from "./store-option.ts";
export { counterStoreSchema, createCounterStore } from "./store-option.ts";
