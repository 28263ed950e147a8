// Mailboxes or aliases from a PostgreSQL table, with the operator's own query:
//   query: SELECT mailbox FROM mail.users WHERE address = $1 AND active
//   parameters: [address]            ($1 = the address; localPart and domain are there too)
// A row found is the answer (see lookup-answer.ts); no row is "unknown"; a query that fails or
// takes longer than timeoutMs is "tempfail". A small pool of its own; connections that break
// are replaced by the next query, so a restarted server is used again without a restart of ours.
import pg from "pg";
import { DirectoryError } from "./directory-error.ts";
import { answerFrom, type LookupResultKind } from "./lookup-answer.ts";
import { withDeadline } from "./lookup-deadline.ts";
import type { LookupAddress, Resolution, Resolver } from "./resolution.ts";

export type LookupParameter = "address" | "localPart" | "domain";

export interface PostgresLookupOptions {
  connectionString: string;
  /** A query with $1 … $n; the first column of the rows is the answer. */
  query: string;
  /** What $1 … $n are (default ["address"]). */
  parameters?: LookupParameter[];
  /** "mailbox" (default): a row means the mailbox exists; "aliases": rows are the addresses. */
  result?: LookupResultKind;
  /** Per query, connection included (default 5,000 ms). */
  timeoutMs?: number;
  /** Connections at most (default 4). */
  poolSize?: number;
  /** Shown in pg_stat_activity (default "postern-recipients"). */
  applicationName?: string;
}

/** host:port/database for logs, never the password. */
function describeServer(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.host || "localhost"}${url.pathname}`;
  } catch {
    return "(connection string)";
  }
}

export function postgresLookup(options: PostgresLookupOptions): Resolver {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const parameters = options.parameters ?? ["address"];
  const result = options.result ?? "mailbox";
  const name = `postgres ${describeServer(options.connectionString)}`;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolSize ?? 4,
    connectionTimeoutMillis: timeoutMs,
    // The server-side query is abandoned too, so a hung query does not hold a connection.
    query_timeout: timeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? "postern-recipients",
  });
  // An idle connection the server dropped is reported here; without a listener it would crash
  // the process. The pool discards it and the next lookup opens a new one.
  pool.on("error", () => {});

  return {
    name,
    async resolve(address: LookupAddress): Promise<Resolution> {
      const values = parameters.map((parameter) => address[parameter]);
      try {
        const { rows } = await withDeadline(
          name,
          timeoutMs,
          pool.query<unknown[]>({ text: options.query, values, rowMode: "array" }),
        );
        const found = rows.map((row) => row[0]).filter((value): value is string => typeof value === "string");
        return answerFrom(name, address, rows.length > 0, found, result);
      } catch (error) {
        return { kind: "tempfail", cause: DirectoryError.from(name, error) };
      }
    },
    async close() {
      await pool.end();
    },
  };
}
