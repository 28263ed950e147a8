// The schedule options every daily-report plugin takes, validated when the config loads (spread
// into the plugin's own schema): when reports go out, how often counts are written, how long they
// are kept.
import { duration } from "@postern/core";
import { z } from "zod";

const hour = "expected an hour 0–23";
const days = "expected a number of days 1–366";

export const dailyReportOptionFields = {
  /** When reports go out: at this UTC hour (0–23, default 1) for the UTC day before. */
  sendHourUtc: z
    .number({ error: hour })
    .int({ error: hour })
    .min(0, { error: hour })
    .max(23, { error: hour })
    .default(1),
  /** false: record only; reports go out when the plugin's sendReports() is called (default true). */
  schedule: z.boolean({ error: "expected true or false" }).default(true),
  /** Counts are kept in memory and written at this interval (default "10s"). */
  flushInterval: duration.default(10_000),
  /** Days of counters kept after their report went out (default 7). */
  retentionDays: z
    .number({ error: days })
    .int({ error: days })
    .min(1, { error: days })
    .max(366, { error: days })
    .default(7),
};
