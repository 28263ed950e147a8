// The options of tlsRpt(), validated when the config loads: one line naming the key on a mistake.
import { duration } from "@postern/core";
import { z } from "zod";
import { dailyReportOptionFields } from "./reporting/schedule-options.ts";
import { counterStoreSchema } from "./reporting/store-option.ts";
import type { TlsRptStore } from "./store.ts";

export interface TlsRptOptions {
  /** The organization-name of every report (default: the server's hostname). */
  organizationName?: string;
  /** The contact-info of every report: an address or URL (default: postmaster@<hostname>). */
  contactInfo?: string;
  /** The report submitter (TLS-Report-Submitter, and the file name): default the hostname. */
  submitter?: string;
  /** The From and envelope sender of mailed reports (default: noreply-tlsrpt@<hostname>). */
  from?: string;
  /**
   * Where outcomes are kept until reported: PostgreSQL (several nodes count together; the URL
   * defaults to DATABASE_URL) or a directory of JSON files (one node). Default: files under
   * ./data/tls-rpt.
   */
  store?:
    | { type: "postgres"; connectionString?: string; schema?: string; maxConnections?: number }
    | { type: "file"; dir?: string }
    | { type: "custom"; store: TlsRptStore };
  /** When reports go out: at this UTC hour (0–23, default 1) for the UTC day before. */
  sendHourUtc?: number;
  /** false: record only; reports are sent by calling plugin.sendReports() (default true). */
  schedule?: boolean;
  /** Outcomes are counted in memory and written at this interval (default "10s"). */
  flushInterval?: string | number;
  /** Sessions without an MTA-STS or DANE policy are reported too, as no-policy-found (default true). */
  includeNoPolicy?: boolean;
  /** Days of outcomes kept after their report went out (default 7). */
  retentionDays?: number;
  /** HTTPS report destinations: the deadline of one POST and CA certificates trusted besides Node's. */
  https?: { timeout?: string | number; ca?: string | string[] };
}

const text = (what: string) => z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` });
const storeSchema = counterStoreSchema<TlsRptStore>({ defaultDir: "./data/tls-rpt", storeName: "TlsRptStore" });

export const tlsRptOptionsSchema = z.strictObject({
  organizationName: text("an organization name").optional(),
  contactInfo: text("an address or URL to contact").optional(),
  submitter: text("a host name").optional(),
  from: z.email({ error: "expected an address such as noreply-tlsrpt@mail.example.com" }).optional(),
  store: storeSchema.optional(),
  ...dailyReportOptionFields,
  includeNoPolicy: z.boolean({ error: "expected true or false" }).default(true),
  https: z
    .strictObject({
      timeout: duration.default(30_000),
      ca: z.union([z.string(), z.array(z.string())], { error: "expected PEM text or a list of PEM texts" }).optional(),
    })
    .prefault({}),
});

export type ResolvedTlsRptOptions = z.output<typeof tlsRptOptionsSchema>;
