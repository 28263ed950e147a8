// TLS-RPT counters in PostgreSQL, shared by every node: the shared PgCounterStore (upserts that
// add, claim-once report marks) with one column per reported field.
import type { PoolClient } from "pg";
import { PgCounterStore, type PgCounterStoreOptions } from "./reporting/pg-counter-store.ts";
import { rowKey, type TlsResultRow, type TlsRptStore } from "./store.ts";

export type PgTlsRptStoreOptions = PgCounterStoreOptions;

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

export class PgTlsRptStore extends PgCounterStore<TlsResultRow> implements TlsRptStore {
  constructor(options: PgTlsRptStoreOptions) {
    super(options, { prefix: "tls_rpt", applicationName: "@postern/tls-rpt" });
  }

  protected async createResults(client: PoolClient): Promise<void> {
    await client.query(`CREATE TABLE IF NOT EXISTS ${this.results} (
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
    await client.query(`CREATE INDEX IF NOT EXISTS tls_rpt_results_domain ON ${this.results} (day, policy_domain)`);
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
    await this.pool.query(
      `INSERT INTO ${this.results} (day, key, policy_domain, policy_type, policy_strings, policy_mx_host,
         result, sending_ip, receiving_ip, receiving_mx, reason_code, detail, count)
       VALUES ${tuples.join(", ")}
       ON CONFLICT (day, key) DO UPDATE SET count = ${this.results}.count + EXCLUDED.count`,
      values,
    );
  }

  async rows(day: string, policyDomain: string): Promise<TlsResultRow[]> {
    const { rows } = await this.pool.query<ResultRecord>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, policy_domain, policy_type, policy_strings, policy_mx_host,
              result, sending_ip, receiving_ip, receiving_mx, reason_code, detail, count
         FROM ${this.results} WHERE day = $1::date AND policy_domain = $2 ORDER BY key`,
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
}
