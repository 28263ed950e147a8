// Bodies of messages just enqueued as one Buffer, kept in memory for their first delivery: a relay
// delivers most messages within a second of queueing them, and reading back the file or the rows
// it has just written costs more than the delivery's own work (an open, a stat, a read and a close
// per message on the filesystem spool; a query on PostgreSQL). The copy on disk stays the truth:
// after a restart, or once a body is crowded out, it is read from the store again.

/** Holds at most `limit` bytes of bodies; the oldest go first. */
export class BodyCache {
  readonly #bodies = new Map<string, Buffer>();
  readonly #limit: number;
  #size = 0;

  constructor(limit = 16 * 1024 * 1024) {
    this.#limit = limit;
  }

  /** Keeps `body` for `id` (Buffers are never changed once queued, so no copy is made). */
  set(id: string, body: Buffer): void {
    if (body.length > this.#limit) return;
    this.delete(id);
    this.#bodies.set(id, body);
    this.#size += body.length;
    for (const [oldest, bytes] of this.#bodies) {
      if (this.#size <= this.#limit) break;
      this.#bodies.delete(oldest);
      this.#size -= bytes.length;
    }
  }

  get(id: string): Buffer | undefined {
    return this.#bodies.get(id);
  }

  delete(id: string): void {
    const body = this.#bodies.get(id);
    if (!body) return;
    this.#bodies.delete(id);
    this.#size -= body.length;
  }

  clear(): void {
    this.#bodies.clear();
    this.#size = 0;
  }
}
