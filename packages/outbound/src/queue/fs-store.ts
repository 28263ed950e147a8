// The default queue store: a spool directory on local disk, owned by one process.
//
//   <dir>/msg/<id>.eml    the message bytes, written once
//   <dir>/msg/<id>.json   envelope + recipient states; its presence is the commit point
//   <dir>/tmp/            files being written; emptied on open
//   <dir>/control/        requests from `postern queue` while a server owns the spool
//   <dir>/cache/          small persistent cache (MTA-STS policies)
//   <dir>/lock            the owning process (core's acquireFileLock: boot id, PID, start time)
//
// Every write goes to tmp/, is fsync'd, renamed into place, and the directory is fsync'd, so a
// crash leaves either the old or the new version of a file, never half of one. The .eml is in
// place (and its directory entry durable) before the .json appears; on open, an .eml without a
// .json is a message that was never acknowledged and is removed.
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { acquireFileLock, type FileLock, FileLockedError, PosternError } from "@postern/core";
import {
  assertMessageId,
  type Claim,
  type ClaimOptions,
  domainOf,
  type ListOptions,
  type MessageEnvelope,
  type NewRecipient,
  type QueuedMessage,
  type QueueStats,
  type QueueStore,
  type RecipientOutcome,
  type RecipientRecord,
} from "./store.ts";

export interface FsQueueStoreOptions {
  /** The spool directory; created when missing. */
  dir: string;
  /**
   * For operator tools: when another live process owns the spool, open read-only and pass
   * retry/delete to the owner through control files instead of failing.
   */
  shared?: boolean;
}

/** Another live process owns the spool directory. */
export class SpoolLockedError extends PosternError {
  declare readonly code: "POSTERN_OUTBOUND_SPOOL_LOCKED";
  /** The owner's PID, as the lock file names it (undefined when the lock file is unreadable). */
  readonly pid: number | undefined;
  constructor(dir: string, pid: number | undefined, reason: string, options: { cause?: unknown } = {}) {
    super(
      "POSTERN_OUTBOUND_SPOOL_LOCKED",
      `queue spool ${dir} is in use: ${reason}; one process owns a spool (use the PostgreSQL store to share a queue)`,
      { ...options, plugin: "@postern/outbound" },
    );
    this.pid = pid;
  }
}

const isHeldLock = (error: unknown): error is FileLockedError => error instanceof FileLockedError;

interface StoredRecord {
  version: 1;
  envelope: MessageEnvelope;
  recipients: RecipientRecord[];
}

interface Lease {
  worker: string;
  until: number;
}

type ControlRequest = { op: "retry"; id?: string } | { op: "delete"; id: string };

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeDurably(path: string, data: Buffer | string): Promise<void> {
  const handle = await open(path, "w", 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class FsQueueStore implements QueueStore {
  readonly kind = "fs";
  readonly dir: string;
  readonly #shared: boolean;
  #owner = false;
  #lock: FileLock | undefined;
  #opened = false;
  readonly #messages = new Map<string, StoredRecord>();
  readonly #leases = new Map<string, Lease>();
  readonly #earliestCache = new WeakMap<StoredRecord, number>();
  /** Per-message write chain: two domains of one message may finish at the same time. */
  readonly #locks = new Map<string, Promise<unknown>>();
  #lastControlScan = 0;

  constructor(options: FsQueueStoreOptions) {
    this.dir = options.dir;
    this.#shared = options.shared ?? false;
  }

  /** False when opened shared while another process owns the spool. */
  get owner(): boolean {
    return this.#owner;
  }

  #path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  async open(): Promise<void> {
    if (this.#opened) return;
    for (const sub of ["msg", "tmp", "control", "cache"])
      await mkdir(this.#path(sub), { recursive: true, mode: 0o700 });
    try {
      await this.#takeLock();
      this.#owner = true;
    } catch (error) {
      if (!(error instanceof SpoolLockedError) || !this.#shared) throw error;
      this.#owner = false;
    }
    if (this.#owner) {
      for (const name of await readdir(this.#path("tmp"))) await rm(this.#path("tmp", name), { force: true });
      await this.#recover();
      await this.#applyControl(true);
    }
    this.#opened = true;
  }

  async #takeLock(): Promise<void> {
    try {
      this.#lock = await acquireFileLock(this.#path("lock"), { purpose: `queue spool ${this.dir}` });
    } catch (error) {
      if (!isHeldLock(error)) throw error;
      const reason = error.message.replace(/^.*? is locked: /, "");
      throw new SpoolLockedError(this.dir, error.owner?.pid, reason, { cause: error });
    }
  }

  async #recover(): Promise<void> {
    this.#messages.clear();
    const names = await readdir(this.#path("msg"));
    const records = new Set(names.filter((name) => name.endsWith(".json")).map((name) => name.slice(0, -5)));
    for (const name of names) {
      if (name.endsWith(".eml") && !records.has(name.slice(0, -4))) {
        // Written but never committed: the client was not told 250, so it will send again.
        await rm(this.#path("msg", name), { force: true });
      }
    }
    for (const id of [...records].sort()) {
      const record = await this.#readRecord(id);
      if (record) this.#messages.set(id, record);
    }
  }

  async #readRecord(id: string): Promise<StoredRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.#path("msg", `${id}.json`), "utf8")) as StoredRecord;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  async close(): Promise<void> {
    if (!this.#opened) return;
    await Promise.allSettled([...this.#locks.values()]);
    await this.#lock?.release();
    this.#lock = undefined;
    this.#opened = false;
    this.#owner = false;
    this.#messages.clear();
    this.#leases.clear();
  }

  #requireOwner(operation: string): void {
    if (!this.#opened) throw new Error(`queue store not open (${operation})`);
    if (!this.#owner) throw new Error(`queue spool ${this.dir} is owned by another process; cannot ${operation}`);
  }

  /** Runs `task` after every earlier task for the same message. */
  #withMessage<T>(id: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(id) ?? Promise.resolve();
    const next = previous.then(task, task);
    const settled = next.catch(() => undefined);
    this.#locks.set(id, settled);
    void settled.then(() => {
      if (this.#locks.get(id) === settled) this.#locks.delete(id);
    });
    return next;
  }

  async #writeRecord(record: StoredRecord): Promise<void> {
    const id = record.envelope.id;
    const temp = this.#path("tmp", `${id}.${randomBytes(4).toString("hex")}.json`);
    await writeDurably(temp, JSON.stringify(record));
    await rename(temp, this.#path("msg", `${id}.json`));
    await syncDir(this.#path("msg"));
  }

  async #removeMessage(id: string): Promise<void> {
    // The .json goes first: without it the message no longer exists, whatever else remains.
    // No fsync here (as in Postfix): a removal lost in a crash means a message delivered just
    // before it is delivered again, never a message lost, and it saves a disk flush per message.
    await rm(this.#path("msg", `${id}.json`), { force: true });
    await rm(this.#path("msg", `${id}.eml`), { force: true });
    this.#messages.delete(id);
    for (const key of [...this.#leases.keys()]) if (key.startsWith(`${id}:`)) this.#leases.delete(key);
  }

  async enqueue(
    envelope: MessageEnvelope,
    recipients: readonly NewRecipient[],
    body: Readable | Buffer,
  ): Promise<void> {
    this.#requireOwner("enqueue");
    assertMessageId(envelope.id);
    if (recipients.length === 0) throw new TypeError("a queued message needs at least one recipient");
    if (this.#messages.has(envelope.id)) throw new Error(`queue ID ${envelope.id} is already queued`);
    const temp = this.#path("tmp", `${envelope.id}.${randomBytes(4).toString("hex")}.eml`);
    const handle = await open(temp, "w", 0o600);
    try {
      if (Buffer.isBuffer(body)) await handle.write(body);
      else for await (const chunk of body) await handle.write(chunk as Buffer);
      await handle.sync();
    } catch (error) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    const now = Date.now();
    const record: StoredRecord = {
      version: 1,
      envelope,
      recipients: recipients.map((recipient, index) => ({
        index,
        address: recipient.address,
        domain: domainOf(recipient.address),
        notify: recipient.notify,
        orcpt: recipient.orcpt,
        state: "queued",
        attempts: 0,
        nextAttemptAt: now,
      })),
    };
    try {
      await rename(temp, this.#path("msg", `${envelope.id}.eml`));
      await syncDir(this.#path("msg"));
      await this.#writeRecord(record);
    } catch (error) {
      await rm(temp, { force: true });
      await rm(this.#path("msg", `${envelope.id}.eml`), { force: true });
      throw error;
    }
    this.#messages.set(envelope.id, record);
  }

  #leaseOf(id: string, index: number, now: number): Lease | undefined {
    const lease = this.#leases.get(`${id}:${index}`);
    return lease && lease.until > now ? lease : undefined;
  }

  /** Earliest next attempt of a record's queued recipients (records are replaced, never changed). */
  #earliest(record: StoredRecord): number {
    let earliest = this.#earliestCache.get(record);
    if (earliest === undefined) {
      earliest = Number.POSITIVE_INFINITY;
      for (const recipient of record.recipients) {
        if (recipient.state === "queued") earliest = Math.min(earliest, recipient.nextAttemptAt);
      }
      this.#earliestCache.set(record, earliest);
    }
    return earliest;
  }

  async claim(options: ClaimOptions): Promise<Claim[]> {
    this.#requireOwner("claim");
    await this.#applyControl(false);
    const now = Date.now();
    const claims = new Map<string, { message: MessageEnvelope; recipients: RecipientRecord[] }>();
    const batches = new Set<string>();
    // In arrival order (the index keeps it), stopping at `limit` deliveries: a claim costs what it
    // takes, not a scan and sort of the whole queue each time.
    for (const record of this.#messages.values()) {
      if (batches.size >= options.limit) break;
      if (this.#earliest(record) > now) continue;
      const id = record.envelope.id;
      for (const recipient of record.recipients) {
        if (recipient.state !== "queued" || recipient.nextAttemptAt > now) continue;
        if (this.#leaseOf(id, recipient.index, now)) continue;
        const batch = `${id}|${recipient.domain}`;
        if (!batches.has(batch)) {
          if (batches.size >= options.limit) continue;
          batches.add(batch);
        }
        this.#leases.set(`${id}:${recipient.index}`, { worker: options.worker, until: now + options.leaseMs });
        const claim = claims.get(id) ?? { message: record.envelope, recipients: [] };
        claim.recipients.push(recipient);
        claims.set(id, claim);
      }
    }
    return [...claims.values()];
  }

  async renew(worker: string, leaseMs: number): Promise<number> {
    const now = Date.now();
    let held = 0;
    for (const lease of this.#leases.values()) {
      if (lease.worker !== worker || lease.until <= now) continue;
      lease.until = now + leaseMs;
      held++;
    }
    return held;
  }

  async release(worker: string, messageId: string, indexes: readonly number[]): Promise<void> {
    for (const index of indexes) {
      const key = `${messageId}:${index}`;
      if (this.#leases.get(key)?.worker === worker) this.#leases.delete(key);
    }
  }

  complete(worker: string, messageId: string, outcomes: readonly RecipientOutcome[]): Promise<number[]> {
    this.#requireOwner("complete");
    return this.#withMessage(messageId, async () => {
      const record = this.#messages.get(messageId);
      if (!record) return [];
      const now = Date.now();
      const recorded: number[] = [];
      const recipients = record.recipients.map((recipient) => {
        const outcome = outcomes.find((candidate) => candidate.index === recipient.index);
        if (!outcome || recipient.state !== "queued") return recipient;
        // An expired lease nobody took over still counts; one taken over by another worker does not.
        if (this.#leases.get(`${messageId}:${recipient.index}`)?.worker !== worker) return recipient;
        recorded.push(recipient.index);
        return {
          ...recipient,
          state: outcome.result === "deferred" ? "queued" : outcome.result,
          attempts: recipient.attempts + 1,
          nextAttemptAt:
            outcome.result === "deferred" ? now + Math.max(0, outcome.retryAfterMs) : recipient.nextAttemptAt,
          lastReply: outcome.reply,
          ...(outcome.result === "deferred" && outcome.delayReported ? { delayReportedAt: now } : {}),
        } satisfies RecipientRecord;
      });
      if (recorded.length === 0) return [];
      if (recipients.every((recipient) => recipient.state !== "queued")) {
        await this.#removeMessage(messageId);
      } else {
        const updated: StoredRecord = { ...record, recipients };
        await this.#writeRecord(updated);
        this.#messages.set(messageId, updated);
      }
      for (const index of recorded) this.#leases.delete(`${messageId}:${index}`);
      return recorded;
    });
  }

  async body(messageId: string): Promise<Readable> {
    assertMessageId(messageId);
    const handle = await open(this.#path("msg", `${messageId}.eml`), "r");
    return handle.createReadStream({ highWaterMark: 256 * 1024 });
  }

  /** All records: the in-memory index for the owner, the files for a shared reader. */
  async #records(): Promise<StoredRecord[]> {
    if (this.#owner) return [...this.#messages.values()];
    const names = (await readdir(this.#path("msg"))).filter((name) => name.endsWith(".json")).sort();
    const records: StoredRecord[] = [];
    for (const name of names) {
      const record = await this.#readRecord(name.slice(0, -5));
      if (record) records.push(record);
    }
    return records;
  }

  #view(record: StoredRecord): QueuedMessage {
    return { ...record.envelope, recipients: record.recipients };
  }

  async get(messageId: string): Promise<QueuedMessage | undefined> {
    assertMessageId(messageId);
    const record = this.#owner ? this.#messages.get(messageId) : await this.#readRecord(messageId);
    return record ? this.#view(record) : undefined;
  }

  async list(options: ListOptions = {}): Promise<QueuedMessage[]> {
    const records = (await this.#records()).sort((a, b) => a.envelope.createdAt - b.envelope.createdAt);
    return records.slice(0, options.limit ?? records.length).map((record) => this.#view(record));
  }

  async retry(messageId?: string): Promise<number> {
    if (messageId !== undefined) assertMessageId(messageId);
    if (!this.#owner) {
      await this.#request({ op: "retry", ...(messageId ? { id: messageId } : {}) });
      const records = messageId ? [await this.#readRecord(messageId)] : await this.#records();
      return records.reduce(
        (sum, record) => sum + (record?.recipients.filter((recipient) => recipient.state === "queued").length ?? 0),
        0,
      );
    }
    const ids = messageId ? [messageId] : [...this.#messages.keys()];
    let count = 0;
    for (const id of ids) {
      count += await this.#withMessage(id, async () => {
        const record = this.#messages.get(id);
        if (!record) return 0;
        const now = Date.now();
        let changed = 0;
        const recipients = record.recipients.map((recipient) => {
          if (recipient.state !== "queued") return recipient;
          changed++;
          return { ...recipient, nextAttemptAt: Math.min(recipient.nextAttemptAt, now) };
        });
        if (changed > 0) {
          const updated = { ...record, recipients };
          await this.#writeRecord(updated);
          this.#messages.set(id, updated);
        }
        return changed;
      });
    }
    return count;
  }

  async delete(messageId: string): Promise<boolean> {
    assertMessageId(messageId);
    if (!this.#owner) {
      const exists = (await this.#readRecord(messageId)) !== undefined;
      if (exists) await this.#request({ op: "delete", id: messageId });
      return exists;
    }
    return this.#withMessage(messageId, async () => {
      if (!this.#messages.has(messageId)) return false;
      await this.#removeMessage(messageId);
      return true;
    });
  }

  async stats(): Promise<QueueStats> {
    const now = Date.now();
    const records = await this.#records();
    const domains = new Map<string, number>();
    let queued = 0;
    let deferred = 0;
    let active = 0;
    let oldest: number | undefined;
    for (const record of records) {
      oldest = oldest === undefined ? record.envelope.createdAt : Math.min(oldest, record.envelope.createdAt);
      for (const recipient of record.recipients) {
        if (recipient.state !== "queued") continue;
        queued++;
        if (recipient.attempts > 0) deferred++;
        if (this.#leaseOf(record.envelope.id, recipient.index, now)) active++;
        domains.set(recipient.domain, (domains.get(recipient.domain) ?? 0) + 1);
      }
    }
    return {
      messages: records.length,
      queued,
      deferred,
      active,
      oldestCreatedAt: oldest,
      domains: [...domains]
        .map(([domain, count]) => ({ domain, queued: count }))
        .sort((a, b) => b.queued - a.queued || a.domain.localeCompare(b.domain)),
    };
  }

  async nextDue(): Promise<number | undefined> {
    const now = Date.now();
    let next: number | undefined;
    for (const record of this.#messages.values()) {
      for (const recipient of record.recipients) {
        if (recipient.state !== "queued") continue;
        const lease = this.#leaseOf(record.envelope.id, recipient.index, now);
        const due = lease ? Math.max(lease.until, recipient.nextAttemptAt) : recipient.nextAttemptAt;
        next = next === undefined ? due : Math.min(next, due);
      }
    }
    return next;
  }

  #cachePath(key: string): string {
    return this.#path("cache", `${encodeURIComponent(key).replace(/%/g, "_")}.json`);
  }

  async loadCached(key: string): Promise<unknown> {
    try {
      return JSON.parse(await readFile(this.#cachePath(key), "utf8"));
    } catch {
      return undefined;
    }
  }

  async saveCached(key: string, value: unknown): Promise<void> {
    if (!this.#owner) return;
    const temp = this.#path("tmp", `cache.${randomBytes(4).toString("hex")}.json`);
    await writeDurably(temp, JSON.stringify(value));
    await rename(temp, this.#cachePath(key));
  }

  /** Leaves a request for the owning process (shared mode). */
  async #request(request: ControlRequest): Promise<void> {
    const name = `${Date.now()}-${randomBytes(4).toString("hex")}.json`;
    const temp = this.#path("tmp", `control.${name}`);
    await writeDurably(temp, JSON.stringify(request));
    await rename(temp, this.#path("control", name));
  }

  /** Applies operator requests left in control/ (checked at most twice a second). */
  async #applyControl(force: boolean): Promise<void> {
    const now = Date.now();
    if (!force && now - this.#lastControlScan < 500) return;
    this.#lastControlScan = now;
    const names = (await readdir(this.#path("control"))).filter((name) => name.endsWith(".json")).sort();
    for (const name of names) {
      const path = this.#path("control", name);
      try {
        const request = JSON.parse(await readFile(path, "utf8")) as ControlRequest;
        if (request.op === "retry") await this.retry(request.id);
        else if (request.op === "delete" && request.id) await this.delete(request.id);
      } catch {
        // A malformed request is dropped; the operator tool only writes well-formed ones.
      }
      await rm(path, { force: true });
    }
  }
}
