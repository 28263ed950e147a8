// Daily-report counters in a directory, one JSON file per UTC day (`2025-01-31.json`), for a
// single node without a database. Each change rewrites the day's file through a temporary file
// and a rename, so a crash leaves the old file or the new one, never half of one. Changes run one
// at a time in this process; two processes must not share the directory (use PostgreSQL for that).
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { CounterRow, CounterStore, PendingReport, RowKey } from "./counter-store.ts";

interface DayFile<Row> {
  rows: Row[];
  /** Policy domain → the report ID it was claimed with. */
  claimed: Record<string, string>;
}

const dayFile = /^(\d{4}-\d{2}-\d{2})\.json$/;

export class FileCounterStore<Row extends CounterRow> implements CounterStore<Row> {
  readonly #dir: string;
  readonly #key: RowKey<Row>;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: { dir: string; key: RowKey<Row> }) {
    this.#dir = options.dir;
    this.#key = options.key;
  }

  async open(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
  }

  async close(): Promise<void> {
    await this.#queue.catch(() => undefined);
  }

  /** Runs `change` after every change before it (one read-modify-write at a time). */
  #serial<T>(change: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(change, change);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #read(day: string): Promise<DayFile<Row>> {
    try {
      return JSON.parse(await readFile(join(this.#dir, `${day}.json`), "utf8")) as DayFile<Row>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { rows: [], claimed: {} };
      throw error;
    }
  }

  async #write(day: string, content: DayFile<Row>): Promise<void> {
    const path = join(this.#dir, `${day}.json`);
    const temporary = `${path}.${process.pid}.tmp`;
    const handle = await open(temporary, "w");
    try {
      await handle.writeFile(JSON.stringify(content));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  }

  async #days(): Promise<string[]> {
    const names = await readdir(this.#dir);
    return names.flatMap((name) => dayFile.exec(name)?.[1] ?? []).sort();
  }

  add(rows: readonly Row[]): Promise<void> {
    return this.#serial(async () => {
      const byDay = new Map<string, Row[]>();
      for (const row of rows) byDay.set(row.day, [...(byDay.get(row.day) ?? []), row]);
      for (const [day, added] of byDay) {
        const content = await this.#read(day);
        const index = new Map(content.rows.map((row, position) => [this.#key(row), position]));
        for (const row of added) {
          const at = index.get(this.#key(row));
          if (at === undefined) {
            index.set(this.#key(row), content.rows.length);
            content.rows.push({ ...row });
          } else {
            const current = content.rows[at]!;
            content.rows[at] = { ...current, count: current.count + row.count };
          }
        }
        await this.#write(day, content);
      }
    });
  }

  pending(beforeDay: string): Promise<PendingReport[]> {
    return this.#serial(async () => {
      const out: PendingReport[] = [];
      for (const day of await this.#days()) {
        if (day >= beforeDay) continue;
        const content = await this.#read(day);
        const domains = new Set(content.rows.map((row) => row.policyDomain));
        for (const policyDomain of [...domains].sort()) {
          if (!(policyDomain in content.claimed)) out.push({ day, policyDomain });
        }
      }
      return out;
    });
  }

  rows(day: string, policyDomain: string): Promise<Row[]> {
    return this.#serial(async () => (await this.#read(day)).rows.filter((row) => row.policyDomain === policyDomain));
  }

  claim(day: string, policyDomain: string, reportId: string): Promise<boolean> {
    return this.#serial(async () => {
      const content = await this.#read(day);
      if (policyDomain in content.claimed) return false;
      content.claimed[policyDomain] = reportId;
      await this.#write(day, content);
      return true;
    });
  }

  release(day: string, policyDomain: string): Promise<void> {
    return this.#serial(async () => {
      const content = await this.#read(day);
      delete content.claimed[policyDomain];
      await this.#write(day, content);
    });
  }

  prune(beforeDay: string): Promise<void> {
    return this.#serial(async () => {
      for (const day of await this.#days()) {
        if (day < beforeDay) await rm(join(this.#dir, `${day}.json`), { force: true });
      }
    });
  }
}
