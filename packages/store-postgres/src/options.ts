// The options of storePostgres(), validated when the config loads.
import { byteSize } from "@postern/core";
import { z } from "zod";

export interface PostgresStoreOptions {
  /** PostgreSQL URL; default the DATABASE_URL environment variable. */
  connectionString?: string;
  /** Schema holding the tables (created and migrated on setup). Default "postern". */
  schema?: string;
  /** Route groups this store takes (see @postern/recipients). Default ["local"]. */
  routes?: string[];
  /** Bytes per stored chunk row: the most of one message held in memory at once. Default 256 KiB. */
  chunkSize?: number | string;
  /** Largest number of connections of this node's pool. Default 10. */
  maxConnections?: number;
  /** How long a delivery waits for a free connection before answering 451. Default 10 s. */
  connectionTimeoutMs?: number;
  /** `application_name` of the connections, shown in pg_stat_activity. */
  applicationName?: string;
  /** The mailbox a recipient's copy is filed under; default the lower-cased address (IDN in ASCII). */
  mailbox?: (address: string) => string;
  /** Delete messages older than `days`, checked every `intervalMinutes` (default 60) by one node at a time. */
  retention?: { days: number; intervalMinutes?: number };
}

export const connectionStringExpected =
  "expected a PostgreSQL URL such as postgres://user@host/db (or set DATABASE_URL)";

/** A plain lower-case SQL identifier, so the schema name never needs escaping tricks. */
export const schemaName = z
  .string()
  .regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'expected a lower-case SQL identifier such as "postern"' });

export const postgresStoreOptionsSchema = z.strictObject({
  connectionString: z.string().min(1, { error: connectionStringExpected }).optional(),
  schema: schemaName.default("postern"),
  routes: z
    .array(z.string().min(1))
    .min(1, { error: 'expected at least one route, e.g. ["local"]' })
    .default(["local"]),
  chunkSize: byteSize
    .refine((size) => size >= 4096 && size <= 64 * 1024 * 1024, { error: "expected a chunk size from 4KB to 64MB" })
    .default(256 * 1024),
  maxConnections: z.number().int().min(1).max(1000).default(10),
  connectionTimeoutMs: z.number().int().positive().default(10_000),
  applicationName: z.string().min(1).max(63).default("@postern/store-postgres"),
  mailbox: z
    .custom<(address: string) => string>((value) => typeof value === "function", {
      error: "expected a function (address) => mailbox name",
    })
    .optional(),
  retention: z
    .strictObject({
      days: z.number({ error: "expected a number of days" }).positive(),
      intervalMinutes: z.number().positive().default(60),
    })
    .optional(),
});

export type ResolvedPostgresStoreOptions = z.output<typeof postgresStoreOptionsSchema>;
