// Test support (not exported): the shared PostgreSQL server of the machine, one schema per store
// instance so parallel test files never see each other's rows.
import { randomBytes } from "node:crypto";
import pg from "pg";

export const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export function uniqueSchema(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

/** Runs one statement on a connection of its own (an administrator's session). */
export async function admin<T extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
): Promise<pg.QueryResult<T>> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: "postern-test-admin" });
  await client.connect();
  try {
    return await client.query<T>(text, values);
  } finally {
    await client.end();
  }
}

export async function dropSchema(schema: string): Promise<void> {
  await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** Row counts of the store's tables: what a failed delivery must not leave behind. */
export async function tableCounts(schema: string): Promise<{ messages: number; chunks: number; deliveries: number }> {
  const { rows } = await admin<{ messages: string; chunks: string; deliveries: string }>(
    `SELECT (SELECT count(*) FROM "${schema}".messages) AS messages,
            (SELECT count(*) FROM "${schema}".message_chunks) AS chunks,
            (SELECT count(*) FROM "${schema}".deliveries) AS deliveries`,
  );
  const row = rows[0]!;
  return { messages: Number(row.messages), chunks: Number(row.chunks), deliveries: Number(row.deliveries) };
}
