// TLS-RPT counters in PostgreSQL, shared by every node: each node adds its counts to the same
// rows (an upsert adds, so no count is lost to a race), and a report is claimed by inserting its
// mark, which only one node can do.
import pg from "pg";
import { type PendingReport, rowKey, type TlsResultRow, type TlsRptStore } from "./store.ts";

export interface PgTlsRptStoreOptions {
  connectionString: string;
  /** Schema holding the tables (created on open). Default "postern". */
  schema?: string;
  maxConnections?: number;
}

interface ResultRecord {
  day: string;
  policy_domain: string;
  policy_type: TlsResultRow["policyType"];
  policy_strings: string[];
  policy_mx_host: string;
  result: TlsResultRow["result"];
  sending_ip: string;
  receiving_ip: string;
  receiving_mx: string;
  reason_code: string;
  detail: string;
  count: string;
}

export class PgTlsRptStore implements TlsRptStore {
  readonly #pool: pg.Pool;
  readonly #schema: string;

  constructor(options: PgTlsRptStoreOptions) {
    this.#schema = options.schema ?? "postern";
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.#schema)) throw new Error(`invalid schema name ${this.#schema}`);
    this.#pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 4,
      application_name: "@postern/tls-rpt",
    });
  }

  get #results(): string {
    return `"${this.#schema}".tls_rpt_results`;
  }

  get #reports(): string {
    return `"${this.#schema}".tls_rpt_reports`;
  }

  async open(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      // One node creates the tables at a time (CREATE … IF NOT EXISTS races on the catalog).
      await client.query("SELECT pg_advisory_lock(hashtext('postern:tls-rpt:schema'))");
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.#results} (
        day date NOT NULL,
        key text NOT NULL,
        policy_domain text NOT NULL,
        policy_type text NOT NULL,
        policy_strings jsonb NOT NULL,
        policy_mx_host text NOT NULL,
        result text NOT NULL,
        sending_ip text NOT NULL,
        receiving_ip text NOT NULL,
        receiving_mx text NOT NULL,
        reason_code text NOT NULL,
        detail text NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (day, key)
      )`);
      await client.query(`CREATE INDEX IF NOT EXISTS tls_rpt_results_domain ON ${this.#results} (day, policy_domain)`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.#reports} (
        day date NOT NULL,
        policy_domain text NOT NULL,
        report_id text NOT NULL,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (day, policy_domain)
      )`);
    } finally {
      await client.query("SELECT pg_advisory_unlock(hashtext('postern:tls-rpt:schema'))").catch(() => undefined);
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  async add(rows: readonly TlsResultRow[]): Promise<void> {
    if (rows.length === 0) return;
    const values: unknown[] = [];
    const tuples = rows.map((row) => {
      const base = values.length;
      values.push(
        row.day,
        rowKey(row),
        row.policyDomain,
        row.policyType,
        JSON.stringify(row.policyStrings),
        row.policyMxHost,
        row.result,
        row.sendingIp,
        row.receivingIp,
        row.receivingMx,
        row.reasonCode,
        row.detail,
        row.count,
      );
      return `(${Array.from({ length: 13 }, (_, i) => `$${base + i + 1}`).join(", ")})`;
    });
    await this.#pool.query(
      `INSERT INTO ${this.#results} (day, key, policy_domain, policy_type, policy_strings, policy_mx_host,
         result, sending_ip, receiving_ip, receiving_mx, reason_code, detail, count)
       VALUES ${tuples.join(", ")}
       ON CONFLICT (day, key) DO UPDATE SET count = ${this.#results}.count + EXCLUDED.count`,
      values,
    );
  }

  async pending(beforeDay: string): Promise<PendingReport[]> {
    const { rows } = await this.#pool.query<{ day: string; policy_domain: string }>(
      `SELECT DISTINCT to_char(r.day, 'YYYY-MM-DD') AS day, r.policy_domain
         FROM ${this.#results} r
        WHERE r.day < $1::date
          AND NOT EXISTS (SELECT 1 FROM ${this.#reports} m WHERE m.day = r.day AND m.policy_domain = r.policy_domain)
        ORDER BY 1, 2`,
      [beforeDay],
    );
    return rows.map((row) => ({ day: row.day, policyDomain: row.policy_domain }));
  }

  async rows(day: string, policyDomain: string): Promise<TlsResultRow[]> {
    const { rows } = await this.#pool.query<ResultRecord>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, policy_domain, policy_type, policy_strings, policy_mx_host,
              result, sending_ip, receiving_ip, receiving_mx, reason_code, detail, count
         FROM ${this.#results} WHERE day = $1::date AND policy_domain = $2 ORDER BY key`,
      [day, policyDomain],
    );
    return rows.map((row) => ({
      day: row.day,
      policyDomain: row.policy_domain,
      policyType: row.policy_type,
      policyStrings: row.policy_strings,
      policyMxHost: row.policy_mx_host,
      result: row.result,
      sendingIp: row.sending_ip,
      receivingIp: row.receiving_ip,
      receivingMx: row.receiving_mx,
      reasonCode: row.reason_code,
      detail: row.detail,
      count: Number(row.count),
    }));
  }

  async claim(day: string, policyDomain: string, reportId: string): Promise<boolean> {
    const { rowCount } = await this.#pool.query(
      `INSERT INTO ${this.#reports} (day, policy_domain, report_id) VALUES ($1::date, $2, $3)
       ON CONFLICT DO NOTHING`,
      [day, policyDomain, reportId],
    );
    return rowCount === 1;
  }

  async release(day: string, policyDomain: string): Promise<void> {
    await this.#pool.query(`DELETE FROM ${this.#reports} WHERE day = $1::date AND policy_domain = $2`, [
      day,
      policyDomain,
    ]);
  }

  async prune(beforeDay: string): Promise<void> {
    await this.#pool.query(`DELETE FROM ${this.#results} WHERE day < $1::date`, [beforeDay]);
    await this.#pool.query(`DELETE FROM ${this.#reports} WHERE day < $1::date`, [beforeDay]);
  }
}
