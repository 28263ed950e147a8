// The options of dmarcReports(), validated when the config loads: one line naming the key on a mistake.
import { type CounterStoreOption, counterStoreSchema, dailyReportOptionFields } from "@postern/tls-rpt/reporting";
import { z } from "zod";
import type { DmarcReportStore } from "./store.ts";

export interface DmarcReportsOptions {
  /** The org_name of every report (default: the server's hostname). */
  organizationName?: string;
  /** The contact address of every report, <email> (default: postmaster@<hostname>). */
  email?: string;
  /** <extra_contact_info>: a URL or further address, left out by default. */
  extraContactInfo?: string;
  /** The receiver in the Subject ("Submitter:") and the file name (default: the hostname). */
  submitter?: string;
  /**
   * The From and envelope sender of reports (default: noreply-dmarc@<hostname>). Report mail must
   * itself pass DMARC: sign it (@postern/dkim) or give this domain an SPF record for the server.
   */
  from?: string;
  /**
   * Where evaluations are counted until reported: PostgreSQL (nodes count together; the URL
   * defaults to DATABASE_URL) or a directory of JSON files (one node). Default: files under
   * ./data/dmarc-reports.
   */
  store?: CounterStoreOption<DmarcReportStore>;
  /** When reports go out: at this UTC hour (0–23, default 1) for the UTC day before. */
  sendHourUtc?: number;
  /** false: record only; reports are sent by calling plugin.sendReports() (default true). */
  schedule?: boolean;
  /** Evaluations are counted in memory and written at this interval (default "10s"). */
  flushInterval?: string | number;
  /** Days of counters kept after their report went out (default 7). */
  retentionDays?: number;
  /**
   * Write <feedback> in the DMARCbis namespace (urn:ietf:params:xml:ns:dmarc-2.0), as the format
   * requires (default true). false: no namespace, for consumers whose RFC 7489 parsers need that.
   */
  xmlNamespace?: boolean;
}

const text = (what: string) => z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` });
const address = (example: string) => z.email({ error: `expected an address such as ${example}` });

export const dmarcReportsOptionsSchema = z.strictObject({
  organizationName: text("an organization name").optional(),
  email: address("postmaster@mail.example.com").optional(),
  extraContactInfo: text("a URL or address").optional(),
  submitter: text("a host name").optional(),
  from: address("noreply-dmarc@mail.example.com").optional(),
  store: counterStoreSchema<DmarcReportStore>({
    defaultDir: "./data/dmarc-reports",
    storeName: "DmarcReportStore",
  }).optional(),
  ...dailyReportOptionFields,
  xmlNamespace: z.boolean({ error: "expected true or false" }).default(true),
});

export type ResolvedDmarcReportsOptions = z.output<typeof dmarcReportsOptionsSchema>;
