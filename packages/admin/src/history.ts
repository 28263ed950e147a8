// The recent transactions the UI lists: a bounded ring in memory (this node's), or a PostgreSQL
// table every node writes to and reads from. Records come from @postern/transaction-log's recorder.
import type { TransactionRecord } from "@postern/transaction-log";
import pg from "pg";

export interface StoredRecord extends TransactionRecord {
  /** The node that handled it. */
  readonly node: string;
}

export interface HistoryQuery {
  readonly limit?: number;
  /** Only this outcome. */
  readonly outcome?: string;
  /** Matches the queue ID, client address, sender or a recipient (substring). */
  readonly text?: string;
}

export interface History {
  add(record: StoredRecord): void;
  list(query?: HistoryQuery): Promise<StoredRecord[]>;
  get(queueId: string): Promise<StoredRecord | undefined>;
  close(): Promise<void>;
}

function matches(record: StoredRecord, query: HistoryQuery): boolean {
  if (query.outcome && record.outcome !== query.outcome) return false;
  if (!query.text) return true;
  const text = query.text.toLowerCase();
  return [record.queueId, record.client.address, record.from, ...record.recipients.map((r) => r.address)].some(
    (field) => field.toLowerCase().includes(text),
  );
}

export class MemoryHistory implements History {
  readonly #records: StoredRecord[] = [];
  readonly #size: number;
  constructor(size: number) {
    this.#size = size;
  }
  add(record: StoredRecord): void {
    this.#records.push(record);
    if (this.#records.length > this.#size) this.#records.splice(0, this.#records.length - this.#size);
  }
  async list(query: HistoryQuery = {}): Promise<StoredRecord[]> {
    const limit = query.limit ?? 100;
    const found: StoredRecord[] = [];
    for (let index = this.#records.length - 1; index >= 0 && found.length < limit; index--) {
      const record = this.#records[index]!;
      if (matches(record, query)) found.push(record);
    }
    return found;
  }
  async get(queueId: string): Promise<StoredRecord | undefined> {
    return this.#records.findLast((record) => record.queueId === queueId);
  }
  async close(): Promise<void> {}
}

/** Rows written as they end (a failed write is logged, never holds up mail), read newest first. */
export class PostgresHistory implements History {
  readonly #pool: pg.Pool;
  readonly #table: string;
  readonly #keepDays: number;
  readonly #onError: (error: unknown) => void;
  #pruner: NodeJS.Timeout | undefined;

  constructor(options: {
    connectionString: string;
    schema: string;
    keepDays: number;
    onError: (error: unknown) => void;
  }) {
    this.#pool = new pg.Pool({ connectionString: options.connectionString, max: 2 });
    this.#pool.on("error", options.onError);
    this.#table = `"${options.schema}".admin_transactions`;
    this.#keepDays = options.keepDays;
    this.#onError = options.onError;
    this.schema = options.schema;
  }
  readonly schema: string;

  async open(): Promise<void> {
    await this.#pool.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
    await this.#pool.query(
      `CREATE TABLE IF NOT EXISTS ${this.#table} (
        id bigserial PRIMARY KEY,
        queue_id text NOT NULL,
        node text NOT NULL,
        ended_at timestamptz NOT NULL,
        record jsonb NOT NULL)`,
    );
    await this.#pool.query(`CREATE INDEX IF NOT EXISTS admin_transactions_queue_id ON ${this.#table} (queue_id)`);
    await this.#pool.query(`CREATE INDEX IF NOT EXISTS admin_transactions_ended_at ON ${this.#table} (ended_at)`);
    const prune = () =>
      this.#pool
        .query(`DELETE FROM ${this.#table} WHERE ended_at < now() - make_interval(days => $1)`, [this.#keepDays])
        .catch(this.#onError);
    this.#pruner = setInterval(prune, 3_600_000);
    this.#pruner.unref();
  }

  add(record: StoredRecord): void {
    this.#pool
      .query(
        `INSERT INTO ${this.#table} (queue_id, node, ended_at, record) VALUES ($1, $2, to_timestamp($3 / 1000.0), $4)`,
        [record.queueId, record.node, record.endedAt, JSON.stringify(record)],
      )
      .catch(this.#onError);
  }

  async list(query: HistoryQuery = {}): Promise<StoredRecord[]> {
    const { rows } = await this.#pool.query<{ record: StoredRecord }>(
      `SELECT record FROM ${this.#table}
        WHERE ($1::text IS NULL OR record->>'outcome' = $1)
          AND ($2::text IS NULL OR position(lower($2) in lower(record::text)) > 0)
        ORDER BY ended_at DESC, id DESC LIMIT $3`,
      [query.outcome ?? null, query.text ?? null, Math.min(query.limit ?? 100, 1000)],
    );
    return rows.map((row) => row.record);
  }

  async get(queueId: string): Promise<StoredRecord | undefined> {
    const { rows } = await this.#pool.query<{ record: StoredRecord }>(
      `SELECT record FROM ${this.#table} WHERE queue_id = $1 ORDER BY id DESC LIMIT 1`,
      [queueId],
    );
    return rows[0]?.record;
  }

  async close(): Promise<void> {
    clearInterval(this.#pruner);
    await this.#pool.end();
  }
}
