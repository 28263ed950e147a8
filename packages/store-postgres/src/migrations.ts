// The package owns its schema. Migrations run in setup(), in one transaction under an advisory
// lock, so two nodes starting at once apply each step exactly once: the second waits for the lock,
// then finds the steps recorded and does nothing. Steps are append-only; never edit a released one.
import type { PoolClient } from "pg";
import { quoteIdentifier } from "./sql.ts";

interface Migration {
  version: number;
  name: string;
  sql(schema: string): string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: "messages, chunks and deliveries",
    sql: (s) => `
      -- One row per stored message (shared by all its recipients in this store).
      CREATE TABLE ${s}.messages (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue_id text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        -- The node (server hostname) that accepted it.
        received_by text NOT NULL,
        mail_from text NOT NULL,
        -- Final size: prepended header fields + original bytes.
        size bigint NOT NULL DEFAULT 0,
        chunk_count integer NOT NULL DEFAULT 0,
        sha256 bytea,
        subject text,
        from_header text,
        message_id_header text,
        client_address text,
        client_helo text,
        authenticated_user text
      );
      CREATE INDEX messages_received_at ON ${s}.messages (received_at);

      -- The bytes, in order, a bounded chunk per row: written and read as streams.
      CREATE TABLE ${s}.message_chunks (
        message_id bigint NOT NULL REFERENCES ${s}.messages (id) ON DELETE CASCADE,
        seq integer NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (message_id, seq)
      );

      -- One row per recipient copy: what a mailbox lists.
      CREATE TABLE ${s}.deliveries (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id bigint NOT NULL REFERENCES ${s}.messages (id) ON DELETE CASCADE,
        mailbox text NOT NULL,
        recipient text NOT NULL,
        route text NOT NULL,
        delivered_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX deliveries_mailbox ON ${s}.deliveries (mailbox, id);
      CREATE INDEX deliveries_message ON ${s}.deliveries (message_id);
    `,
  },
];

/** Key space of this package's advisory locks ("PSTN"); the second key is per schema. */
export const lockClass = 0x5053_544e;

/** Applies the missing migrations; returns the versions it applied (empty when up to date). */
export async function migrate(client: PoolClient, schema: string): Promise<number[]> {
  const s = quoteIdentifier(schema);
  const applied: number[] = [];
  await client.query("BEGIN");
  try {
    // Transaction-scoped: released by COMMIT or ROLLBACK, even if this node dies.
    await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [lockClass, `migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await client.query<{ version: number }>(`SELECT version FROM ${s}.schema_migrations`);
    const done = new Set(rows.map((row) => row.version));
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await client.query(migration.sql(s));
      await client.query(`INSERT INTO ${s}.schema_migrations (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
    await client.query("COMMIT");
    return applied;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}
