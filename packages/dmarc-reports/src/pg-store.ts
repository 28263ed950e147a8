// DMARC counters in PostgreSQL, shared by every node: the shared PgCounterStore (upserts that
// add, claim-once report marks). A row's reported fields are kept as one jsonb value next to its
// key: reports read them whole and nothing queries them one by one.
import { PgCounterStore, type PgCounterStoreOptions } from "@postern/tls-rpt/reporting";
import type { PoolClient } from "pg";
import { type DmarcReportStore, type DmarcResultRow, rowKey } from "./store.ts";

export type PgDmarcReportStoreOptions = PgCounterStoreOptions;

export class PgDmarcReportStore extends PgCounterStore<DmarcResultRow> implements DmarcReportStore {
  constructor(options: PgDmarcReportStoreOptions) {
    super(options, { prefix: "dmarc_report", applicationName: "@postern/dmarc-reports" });
  }

  protected async createResults(client: PoolClient): Promise<void> {
    await client.query(`CREATE TABLE IF NOT EXISTS ${this.results} (
        day date NOT NULL,
        key text NOT NULL,
        policy_domain text NOT NULL,
        fields jsonb NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (day, key)
      )`);
    await client.query(
      `CREATE INDEX IF NOT EXISTS dmarc_report_results_domain ON ${this.results} (day, policy_domain)`,
    );
  }

  async add(rows: readonly DmarcResultRow[]): Promise<void> {
    if (rows.length === 0) return;
    const values: unknown[] = [];
    const tuples = rows.map((row) => {
      const base = values.length;
      const { day, policyDomain, count, ...fields } = row;
      values.push(day, rowKey(row), policyDomain, JSON.stringify(fields), count);
      return `($${base + 1}, $${base + 2}, $${base + 3}, $${base + 4}::jsonb, $${base + 5})`;
    });
    await this.pool.query(
      `INSERT INTO ${this.results} (day, key, policy_domain, fields, count)
       VALUES ${tuples.join(", ")}
       ON CONFLICT (day, key) DO UPDATE SET count = ${this.results}.count + EXCLUDED.count`,
      values,
    );
  }

  async rows(day: string, policyDomain: string): Promise<DmarcResultRow[]> {
    const { rows } = await this.pool.query<{ day: string; policy_domain: string; fields: object; count: string }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, policy_domain, fields, count
         FROM ${this.results} WHERE day = $1::date AND policy_domain = $2 ORDER BY key`,
      [day, policyDomain],
    );
    return rows.map(
      (row) =>
        ({ ...row.fields, day: row.day, policyDomain: row.policy_domain, count: Number(row.count) }) as DmarcResultRow,
    );
  }
}
