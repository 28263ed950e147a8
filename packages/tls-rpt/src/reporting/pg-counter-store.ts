// Daily-report counters in PostgreSQL, shared by every node: each node adds its counts to the
// same rows (an upsert adds, so no count is lost to a race), and a report is claimed by inserting
// its mark, which only one node can do. This base keeps the report marks and the table set; a
// subclass names the results table's own columns and how rows are written and read.
import pg, { type PoolClient } from "pg";
import type { CounterRow, CounterStore, PendingReport } from "./counter-store.ts";

export interface PgCounterStoreOptions {
  connectionString: string;
  /** Schema holding the tables (created on open). Default "postern". */
  schema?: string;
  maxConnections?: number;
}

export abstract class PgCounterStore<Row extends CounterRow> implements CounterStore<Row> {
  protected readonly pool: pg.Pool;
  readonly #schema: string;
  readonly #prefix: string;
  readonly #lock: string;

  /** `prefix` names the tables: `<prefix>_results` (which must have `day` and `policy_domain`) and `<prefix>_reports`. */
  constructor(options: PgCounterStoreOptions, tables: { prefix: string; applicationName: string }) {
    this.#schema = options.schema ?? "postern";
    this.#prefix = tables.prefix;
    // The advisory lock that serialises table creation, e.g. "postern:tls-rpt:schema".
    this.#lock = `postern:${tables.applicationName.replace(/^@postern\//, "")}:schema`;
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.#schema)) throw new Error(`invalid schema name ${this.#schema}`);
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 4,
      application_name: tables.applicationName,
    });
  }

  protected get schema(): string {
    return this.#schema;
  }

  protected get results(): string {
    return `"${this.#schema}".${this.#prefix}_results`;
  }

  get #reports(): string {
    return `"${this.#schema}".${this.#prefix}_reports`;
  }

  /** Creates the results table (and its indexes) if missing; runs under the schema lock. */
  protected abstract createResults(client: PoolClient): Promise<void>;
  abstract add(rows: readonly Row[]): Promise<void>;
  abstract rows(day: string, policyDomain: string): Promise<Row[]>;

  async open(): Promise<void> {
    const client = await this.pool.connect();
    const lock = this.#lock;
    try {
      // One node creates the tables at a time (CREATE … IF NOT EXISTS races on the catalog).
      await client.query("SELECT pg_advisory_lock(hashtext($1))", [lock]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
      await this.createResults(client);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.#reports} (
        day date NOT NULL,
        policy_domain text NOT NULL,
        report_id text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (day, policy_domain)
      )`);
    } finally {
      await client.query("SELECT pg_advisory_unlock(hashtext($1))", [lock]).catch(() => undefined);
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  async pending(beforeDay: string): Promise<PendingReport[]> {
    const { rows } = await this.pool.query<{ day: string; policy_domain: string }>(
      `SELECT DISTINCT to_char(r.day, 'YYYY-MM-DD') AS day, r.policy_domain
         FROM ${this.results} r
        WHERE r.day < $1::date
          AND NOT EXISTS (SELECT 1 FROM ${this.#reports} m WHERE m.day = r.day AND m.policy_domain = r.policy_domain)
        ORDER BY 1, 2`,
      [beforeDay],
    );
    return rows.map((row) => ({ day: row.day, policyDomain: row.policy_domain }));
  }

  async claim(day: string, policyDomain: string, reportId: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `INSERT INTO ${this.#reports} (day, policy_domain, report_id) VALUES ($1::date, $2, $3)
       ON CONFLICT DO NOTHING`,
      [day, policyDomain, reportId],
    );
    return rowCount === 1;
  }

  async release(day: string, policyDomain: string): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.#reports} WHERE day = $1::date AND policy_domain = $2`, [
      day,
      policyDomain,
    ]);
  }

  async prune(beforeDay: string): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.results} WHERE day < $1::date`, [beforeDay]);
    await this.pool.query(`DELETE FROM ${this.#reports} WHERE day < $1::date`, [beforeDay]);
  }
}
