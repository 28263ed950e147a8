// The default queue store: a spool directory on local disk, owned by one process.
//
//   <dir>/msg/<id>.eml    the message bytes, written once
//   <dir>/msg/<id>.json   envelope + recipient states; its presence is the commit point
//   <dir>/tmp/            files being written; emptied on open
//   <dir>/control/        requests from `postern queue` while a server owns the spool
//   <dir>/cache/          small persistent cache (MTA-STS policies)
//   <dir>/lock            the owning process (core's acquireFileLock: boot id, PID, start time)
//
// Every write goes to tmp/, is flushed to disk, renamed into place, and the directory is fsync'd,
// so a crash leaves either the old or the new version of a file, never half of one.
//
// Enqueue, and why each flush is there (2 flushes per message plus a share of one):
//   1. the .eml and the .json are written into tmp/ at the same time, each on a file opened
//      O_DSYNC (a write that returns once its data and the file's size are on disk, what write +
//      fdatasync do, in one call; the two flushes overlap instead of following each other). Without
//      them a crash after the rename could leave a named file with missing or stale bytes.
//   2. both are renamed into msg/, the .eml first;
//   3. msg/ is fsync'd, which makes both new entries durable: this is the commit point, after
//      which enqueue resolves. The fsync is shared by every enqueue (and record update) that
//      renamed into msg/ meanwhile (group commit, core's DirectorySync): one ~2 ms flush whether
//      it covers one entry or fifty.
// A crash before 3 may have kept either entry, both or neither: on open, an .eml without a .json
// and a .json without an .eml are a message that was never acknowledged, and are removed (removal
// takes the .json first, so a stored message never lacks its .eml otherwise).
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, open, readdir, readFile, rename, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { acquireFileLock, DirectorySync, type FileLock, FileLockedError, PosternError } from "@postern/core";
import { BodyCache } from "./body-cache.ts";
import { DueSchedule } from "./due-schedule.ts";
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
  type ReleaseOptions,
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

type ControlRequest = { op: "retry"; id?: string } | { op: "delete" | "hold" | "unhold"; id: string };

// Not every platform has O_DSYNC (Windows); there the file is written, then fdatasync'd.
const O_DSYNC = (constants as { O_DSYNC?: number }).O_DSYNC;
const { O_WRONLY, O_CREAT, O_TRUNC } = constants;

/** Bodies up to this size come as one Buffer (core holds them in memory already): one write. */
const bodyBufferLimit = 256 * 1024;

/**
 * Writes a new file whose bytes are on disk when this resolves (its directory entry is not: the
 * caller renames it and fsyncs the directory). A small write goes on an O_DSYNC file, one call;
 * a stream is written as it comes and fdatasync'd once (O_DSYNC would wait for the disk per chunk).
 */
async function writeDurably(path: string, data: Buffer | string | Readable): Promise<void> {
  const inOneWrite = typeof data === "string" || Buffer.isBuffer(data);
  const dsync = inOneWrite && O_DSYNC !== undefined;
  const handle = await open(path, O_WRONLY | O_CREAT | O_TRUNC | (dsync ? O_DSYNC : 0), 0o600);
  try {
    await handle.writeFile(data);
    if (!dsync) await handle.datasync();
  } finally {
    await handle.close();
  }
}

/**
 * Removes a file that may already be gone. unlink, not rm({ force: true }): rm stats the path
 * twice before it unlinks (three system calls on the thread pool instead of one), and this runs
 * twice for every message delivered.
 */
async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
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
  /**
   * When each record next has a recipient to claim (see #claimableAt). Never later than the truth:
   * records are replaced, never changed, and the entry is dropped whenever a lease of its message
   * ends early; a renewed lease only makes it early, which claim then checks again.
   */
  readonly #claimableCache = new WeakMap<StoredRecord, number>();
  /** Each message with a queued recipient, by when it is next claimable. */
  readonly #due = new DueSchedule();
  /** Per-message write chain: two domains of one message may finish at the same time. */
  readonly #locks = new Map<string, Promise<unknown>>();
  /** fsyncs of msg/ shared by the writers that renamed into it meanwhile (group commit). */
  readonly #directories = new DirectorySync();
  /** Bodies just enqueued as one Buffer, for their first delivery (body-cache.ts says why). */
  readonly #bodyCache = new BodyCache();
  #lastControlScan = 0;
  #tempCounter = 0;
  readonly bodyBufferLimit = bodyBufferLimit;

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
    const bodies = new Set(names.filter((name) => name.endsWith(".eml")).map((name) => name.slice(0, -4)));
    for (const id of bodies) {
      if (!records.has(id)) {
        // Written but never committed: the client was not told 250, so it will send again.
        await rm(this.#path("msg", `${id}.eml`), { force: true });
      }
    }
    for (const id of records) {
      if (!bodies.has(id)) {
        // Renamed into place, but the crash came before the fsync of msg/ that commits both
        // entries, and only this one survived: never acknowledged either.
        await rm(this.#path("msg", `${id}.json`), { force: true });
        records.delete(id);
      }
    }
    for (const id of [...records].sort()) {
      const record = await this.#readRecord(id);
      if (record) this.#put(record);
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
    this.#due.clear();
    this.#bodyCache.clear();
  }

  #requireOwner(operation: string): void {
    if (!this.#opened) throw new Error(`queue store not open (${operation})`);
    if (!this.#owner) throw new Error(`queue spool ${this.dir} is owned by another process; cannot ${operation}`);
  }

  /**
   * A name part no other file in tmp/ has: only the owner writes there under queue IDs (other
   * processes' control requests start with "control."), and tmp/ is emptied when it opens. A
   * counter, not randomBytes: that is a synchronous call into OpenSSL on every enqueue and record
   * update (2% of the relay's main thread in a profile).
   */
  #nextTempName(): string {
    return (++this.#tempCounter).toString(36);
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
    const temp = this.#path("tmp", `${id}.${this.#nextTempName()}.json`);
    await writeDurably(temp, JSON.stringify(record));
    await rename(temp, this.#path("msg", `${id}.json`));
    // The new version is in place only once msg/ is fsync'd (shared with concurrent writers).
    await this.#directories.sync(this.#path("msg"));
  }

  async #removeMessage(id: string): Promise<void> {
    this.#bodyCache.delete(id);
    // The .json goes first: without it the message no longer exists, whatever else remains.
    // No fsync here (as in Postfix): a removal lost in a crash means a message delivered just
    // before it is delivered again, never a message lost, and it saves a disk flush per message.
    await removeFile(this.#path("msg", `${id}.json`));
    await removeFile(this.#path("msg", `${id}.eml`));
    this.#messages.delete(id);
    this.#due.forget(id);
    for (const key of [...this.#leases.keys()]) if (key.startsWith(`${id}:`)) this.#leases.delete(key);
  }

  /** Keeps a new version of a record and schedules it. */
  #put(record: StoredRecord): void {
    this.#messages.set(record.envelope.id, record);
    this.#schedule(record);
  }

  #schedule(record: StoredRecord): void {
    const at = this.#claimableAt(record, Date.now());
    if (at !== Number.POSITIVE_INFINITY) this.#due.schedule(record.envelope.id, at);
  }

  /** Ends a lease before its time; the record may be claimable again at once. */
  #dropLease(id: string, index: number): void {
    this.#leases.delete(`${id}:${index}`);
    const record = this.#messages.get(id);
    if (!record) return;
    this.#claimableCache.delete(record);
    this.#schedule(record);
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
    // The steps and why each flush is needed: the comment at the top of this file.
    const unique = `${envelope.id}.${this.#nextTempName()}`;
    const bodyTemp = this.#path("tmp", `${unique}.eml`);
    const recordTemp = this.#path("tmp", `${unique}.json`);
    const bodyPath = this.#path("msg", `${envelope.id}.eml`);
    const recordPath = this.#path("msg", `${envelope.id}.json`);
    try {
      const written = await Promise.allSettled([
        writeDurably(bodyTemp, body),
        writeDurably(recordTemp, JSON.stringify(record)),
      ]);
      for (const result of written) if (result.status === "rejected") throw result.reason;
      await rename(bodyTemp, bodyPath);
      await rename(recordTemp, recordPath);
      await this.#directories.sync(this.#path("msg"));
    } catch (error) {
      // The .json first: without it nothing is queued, whatever else remains. Each removal is
      // tried even when one fails (a read-only disk): the caller gets the first error, 4xx.
      for (const path of [recordPath, bodyPath, recordTemp, bodyTemp]) {
        await rm(path, { force: true }).catch(() => undefined);
      }
      throw error;
    }
    this.#put(record);
    if (Buffer.isBuffer(body)) this.#bodyCache.set(envelope.id, body);
  }

  #leaseOf(id: string, index: number, now: number): Lease | undefined {
    const lease = this.#leases.get(`${id}:${index}`);
    return lease && lease.until > now ? lease : undefined;
  }

  /**
   * The earliest time a queued recipient of the record can be claimed: its next attempt, or the
   * end of its lease when one is held. Cached per record: claim and nextDue run after every
   * delivery, and recomputing it for every record of a backlog (a lease key per recipient) made
   * the queue's bookkeeping a fifth of the relay's CPU time under load.
   */
  #claimableAt(record: StoredRecord, now: number): number {
    let at = this.#claimableCache.get(record);
    if (at === undefined) {
      at = Number.POSITIVE_INFINITY;
      for (const recipient of record.recipients) {
        if (recipient.state !== "queued") continue;
        const lease = this.#leaseOf(record.envelope.id, recipient.index, now);
        const due = lease ? Math.max(lease.until, recipient.nextAttemptAt) : recipient.nextAttemptAt;
        if (due < at) at = due;
      }
      this.#claimableCache.set(record, at);
    }
    return at;
  }

  async claim(options: ClaimOptions): Promise<Claim[]> {
    this.#requireOwner("claim");
    await this.#applyControl(false);
    const now = Date.now();
    const claims = new Map<string, { message: MessageEnvelope; recipients: RecipientRecord[] }>();
    const batches = new Set<string>();
    // Earliest due first (arrival order among equals), stopping at `limit` deliveries: a claim
    // costs what it takes, not a walk over the whole queue, deferred backlog included.
    const looked: StoredRecord[] = [];
    while (batches.size < options.limit) {
      const id = this.#due.takeDue(now);
      if (id === undefined) break;
      const record = this.#messages.get(id);
      if (!record) continue;
      looked.push(record);
      // Scheduled early (a lease renewed since): scheduled again below at its real time.
      if (this.#claimableAt(record, now) > now) continue;
      this.#claimableCache.delete(record);
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
    // After the loop: a record still due now (the limit stopped inside it) must not be taken twice.
    for (const record of looked) if (this.#messages.get(record.envelope.id) === record) this.#schedule(record);
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

  async release(
    worker: string,
    messageId: string,
    indexes: readonly number[],
    options: ReleaseOptions = {},
  ): Promise<void> {
    const delayMs = options.delayMs ?? 0;
    const mine = indexes.filter((index) => this.#leases.get(`${messageId}:${index}`)?.worker === worker);
    if (delayMs > 0 && mine.length > 0) {
      this.#requireOwner("release");
      await this.#withMessage(messageId, async () => {
        const record = this.#messages.get(messageId);
        if (!record) return;
        const until = Date.now() + delayMs;
        const recipients = record.recipients.map((recipient) =>
          mine.includes(recipient.index) && recipient.state === "queued"
            ? { ...recipient, nextAttemptAt: Math.max(recipient.nextAttemptAt, until) }
            : recipient,
        );
        const updated: StoredRecord = { ...record, recipients };
        await this.#writeRecord(updated);
        this.#put(updated);
      });
    }
    for (const index of mine) this.#dropLease(messageId, index);
  }

  complete(worker: string, messageId: string, outcomes: readonly RecipientOutcome[]): Promise<number[]> {
    this.#requireOwner("complete");
    // The first attempt is over: a retry, later, reads the file.
    this.#bodyCache.delete(messageId);
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
      if (recipients.every((recipient) => recipient.state === "delivered" || recipient.state === "bounced")) {
        await this.#removeMessage(messageId);
      } else {
        const updated: StoredRecord = { ...record, recipients };
        await this.#writeRecord(updated);
        this.#put(updated);
      }
      for (const index of recorded) this.#dropLease(messageId, index);
      return recorded;
    });
  }

  async body(messageId: string): Promise<Readable> {
    assertMessageId(messageId);
    const cached = this.#bodyCache.get(messageId);
    if (cached) return Readable.from([cached], { objectMode: false });
    const handle = await open(this.#path("msg", `${messageId}.eml`), "r");
    // Read buffers sized to the file: a fixed 256 KB highWaterMark allocated 256 KB for each read
    // of a 10 KB message, and once more for the read that finds the end, so every delivery left
    // half a megabyte of buffers for the garbage collector. With `end` there is no read at EOF.
    let size: number;
    try {
      ({ size } = await handle.stat());
    } catch (error) {
      await handle.close();
      throw error;
    }
    if (size === 0) {
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream({ highWaterMark: Math.min(size, 256 * 1024), start: 0, end: size - 1 });
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
          this.#put(updated);
        }
        return changed;
      });
    }
    return count;
  }

  hold(messageId: string): Promise<number> {
    return this.#setHeld(messageId, true);
  }

  unhold(messageId: string): Promise<number> {
    return this.#setHeld(messageId, false);
  }

  async #setHeld(messageId: string, held: boolean): Promise<number> {
    assertMessageId(messageId);
    const from = held ? "queued" : "held";
    if (!this.#owner) {
      // The owner applies it within half a second; the count is what it will find to change.
      const record = await this.#readRecord(messageId);
      if (!record) return 0;
      await this.#request({ op: held ? "hold" : "unhold", id: messageId });
      return record.recipients.filter((recipient) => recipient.state === from).length;
    }
    return this.#withMessage(messageId, async () => {
      const record = this.#messages.get(messageId);
      if (!record) return 0;
      const now = Date.now();
      let changed = 0;
      const recipients = record.recipients.map((recipient): RecipientRecord => {
        if (recipient.state !== from) return recipient;
        // One being delivered right now finishes its attempt (its outcome is recorded as usual).
        if (held && this.#leaseOf(messageId, recipient.index, now)) return recipient;
        changed++;
        return held
          ? { ...recipient, state: "held" }
          : { ...recipient, state: "queued", nextAttemptAt: Math.min(recipient.nextAttemptAt, now) };
      });
      if (changed > 0) {
        const updated = { ...record, recipients };
        await this.#writeRecord(updated);
        this.#put(updated);
      }
      return changed;
    });
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

  async ready(): Promise<void> {
    // Where enqueue() writes: a body into tmp/, then the message under msg/.
    await access(this.#path("tmp"), constants.W_OK);
    await access(this.#path("msg"), constants.W_OK);
  }

  async stats(): Promise<QueueStats> {
    const now = Date.now();
    const records = await this.#records();
    const domains = new Map<string, number>();
    let queued = 0;
    let deferred = 0;
    let active = 0;
    let held = 0;
    let oldest: number | undefined;
    for (const record of records) {
      oldest = oldest === undefined ? record.envelope.createdAt : Math.min(oldest, record.envelope.createdAt);
      for (const recipient of record.recipients) {
        if (recipient.state === "held") held++;
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
      held,
      oldestCreatedAt: oldest,
      domains: [...domains]
        .map(([domain, count]) => ({ domain, queued: count }))
        .sort((a, b) => b.queued - a.queued || a.domain.localeCompare(b.domain)),
    };
  }

  async nextDue(): Promise<number | undefined> {
    // Never later than the truth; earlier only after a lease was renewed (claim then corrects it).
    return this.#due.peek();
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
        else if (request.op === "hold" && request.id) await this.hold(request.id);
        else if (request.op === "unhold" && request.id) await this.unhold(request.id);
      } catch {
        // A malformed request is dropped; the operator tool only writes well-formed ones.
      }
      await rm(path, { force: true });
    }
  }
}
