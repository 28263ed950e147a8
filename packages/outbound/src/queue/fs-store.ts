// The default queue store: a spool directory on local disk, owned by one process.
//
//   <dir>/msg/<id>.msg    the message: its record as enqueued, then its bytes (spool-file.ts)
//   <dir>/msg/<id>.json   a later version of the record (an attempt deferred, a hold), when any
//   <dir>/msg/<id>.eml    the bytes of a message queued by an older version (with its .json)
//   <dir>/tmp/            files being written; emptied on open
//   <dir>/control/        requests from `postern queue` while a server owns the spool
//   <dir>/cache/          small persistent cache (MTA-STS policies)
//   <dir>/lock            the owning process (core's acquireFileLock: boot id, PID, start time)
//
// Every write goes to tmp/, is flushed to disk, renamed into place, and the directory is fsync'd,
// so a crash leaves either the old or the new version of a file, never half of one: a name in
// msg/ is always a whole file.
//
// Enqueue, and why each flush is there (one flush per message plus a share of one):
//   1. the record and the body are written into tmp/ as one file, on a file opened O_DSYNC (a
//      write that returns once its data and the file's size are on disk, what write + fdatasync
//      do, in one call). Without it a crash after the rename could leave a named file with missing
//      or stale bytes. A body that comes as a stream is written as it comes and fdatasync'd once.
//   2. it is renamed into msg/;
//   3. msg/ is fsync'd, which makes the new entry durable: this is the commit point, after which
//      enqueue resolves. The fsync is shared by every enqueue (and record update) that renamed
//      into msg/ meanwhile (group commit, core's DirectorySync): one ~2 ms flush whether it covers
//      one entry or fifty.
// A crash before 3 may or may not have kept the entry; either way the client was not told 250.
// One file, not a body file and a record file: two files cost twice the opens, writes, closes and
// renames, and two flushes of the disk (a relay enqueued half as fast; BENCHMARKS.md, issue 17).
//
// A record update writes <id>.json (tmp/, rename, fsync of msg/ as above); when it exists it is
// the record, and the .msg's own is where the message started. Removal takes the .msg first:
// without it the message no longer exists, and a .json left alone is removed on open.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, type FileHandle, mkdir, open, readdir, readFile, rename, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { acquireFileLock, DirectorySync, type FileLock, FileLockedError, PosternError } from "@postern/core";
import { BodyCache } from "./body-cache.ts";
import { DueSchedule } from "./due-schedule.ts";
import { readSpoolHead, type SpoolHead, spoolHead } from "./spool-file.ts";
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
 * `head` goes in front of `data` (a queue file's record).
 */
async function writeDurably(path: string, data: Buffer | string | Readable, head?: Buffer): Promise<void> {
  const inOneWrite = typeof data === "string" || Buffer.isBuffer(data);
  const dsync = inOneWrite && O_DSYNC !== undefined;
  const handle = await open(path, O_WRONLY | O_CREAT | O_TRUNC | (dsync ? O_DSYNC : 0), 0o600);
  try {
    if (head && inOneWrite) {
      // One buffer, one write: on an O_DSYNC file every write waits for the disk.
      await handle.writeFile(Buffer.concat([head, typeof data === "string" ? Buffer.from(data) : data]));
    } else {
      if (head) await handle.writeFile(head);
      // After a write, writeFile goes on from the file's position (Node's FileHandle docs).
      await handle.writeFile(data);
    }
    if (!dsync) await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** A file's text, or undefined when there is no such file. */
async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

const parseRecord = (json: string): StoredRecord => JSON.parse(json) as StoredRecord;

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
  /** Where the body starts in each message's .msg file; none for an older version's .eml. */
  readonly #bodyStarts = new Map<string, number>();
  /**
   * Messages with a .json beside their .msg. Most are delivered at the first attempt and never
   * get one; removal unlinks a .json only when it is there (a failed unlink is a thrown error with
   * a stack, and a system call, for every message delivered).
   */
  readonly #recordFiles = new Set<string>();
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
      try {
        for (const name of await readdir(this.#path("tmp"))) await rm(this.#path("tmp", name), { force: true });
        await this.#recover();
        await this.#applyControl(true);
      } catch (error) {
        // Not open, so close() would not let the lock go: the next open would find it held.
        await this.#lock?.release();
        this.#lock = undefined;
        this.#owner = false;
        throw error;
      }
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
    this.#bodyStarts.clear();
    this.#recordFiles.clear();
    const names = await readdir(this.#path("msg"));
    const idsEnding = (suffix: string) =>
      new Set(names.filter((name) => name.endsWith(suffix)).map((name) => name.slice(0, -suffix.length)));
    const messages = idsEnding(".msg");
    const records = idsEnding(".json");
    const oldBodies = idsEnding(".eml");
    for (const id of oldBodies) {
      if (!records.has(id)) {
        // An older version's message written but never committed: the client was not told 250,
        // so it will send again.
        await rm(this.#path("msg", `${id}.eml`), { force: true });
      }
    }
    for (const id of records) {
      if (!messages.has(id) && !oldBodies.has(id)) {
        // A record whose message is gone: removal takes the .msg first, and an older version's
        // .json could outlive an .eml whose entry the crash did not keep. Nothing to deliver.
        await rm(this.#path("msg", `${id}.json`), { force: true });
        records.delete(id);
      }
    }
    for (const id of records) this.#recordFiles.add(id);
    for (const id of [...new Set([...messages, ...records])].sort()) {
      const record = await this.#readRecord(id);
      if (record) this.#put(record);
    }
  }

  /** The head of a message's .msg file; undefined when it has none (an older version's message). */
  async #readHead(id: string): Promise<SpoolHead | undefined> {
    const path = this.#path("msg", `${id}.msg`);
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    try {
      return await readSpoolHead(handle, path);
    } finally {
      await handle.close();
    }
  }

  /**
   * The newest record of a message: its .json when there is one, else the head of its .msg.
   * The owner (on open) also notes where each .msg's body starts; a shared reader only reads.
   */
  async #readRecord(id: string): Promise<StoredRecord | undefined> {
    const json = await readIfThere(this.#path("msg", `${id}.json`));
    if (json !== undefined && !this.#owner) return parseRecord(json);
    const head = await this.#readHead(id);
    if (head && this.#owner) this.#bodyStarts.set(id, head.bodyStart);
    const newest = json ?? head?.recordJson;
    return newest === undefined ? undefined : parseRecord(newest);
  }

  async close(): Promise<void> {
    if (!this.#opened) return;
    await Promise.allSettled([...this.#locks.values()]);
    await this.#lock?.release();
    this.#lock = undefined;
    this.#opened = false;
    this.#owner = false;
    this.#messages.clear();
    this.#bodyStarts.clear();
    this.#recordFiles.clear();
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
    this.#recordFiles.add(id);
    // The new version is in place only once msg/ is fsync'd (shared with concurrent writers).
    await this.#directories.sync(this.#path("msg"));
  }

  async #removeMessage(id: string): Promise<void> {
    this.#bodyCache.delete(id);
    // No fsync here (as in Postfix): a removal lost in a crash means a message delivered just
    // before it is delivered again, never a message lost, and it saves a disk flush per message.
    if (this.#bodyStarts.has(id)) {
      // The .msg first: without it the message no longer exists, and a .json left is removed on open.
      await removeFile(this.#path("msg", `${id}.msg`));
      if (this.#recordFiles.has(id)) await removeFile(this.#path("msg", `${id}.json`));
    } else {
      // An older version's message: without its .json it no longer exists.
      await removeFile(this.#path("msg", `${id}.json`));
      await removeFile(this.#path("msg", `${id}.eml`));
    }
    this.#bodyStarts.delete(id);
    this.#recordFiles.delete(id);
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
    const temp = this.#path("tmp", `${envelope.id}.${this.#nextTempName()}.msg`);
    const path = this.#path("msg", `${envelope.id}.msg`);
    const head = spoolHead(JSON.stringify(record));
    try {
      await writeDurably(temp, body, head);
      await rename(temp, path);
      await this.#directories.sync(this.#path("msg"));
    } catch (error) {
      // Each removal is tried even when one fails (a read-only disk): the caller gets the first
      // error, 4xx.
      for (const leftover of [path, temp]) await rm(leftover, { force: true }).catch(() => undefined);
      throw error;
    }
    this.#bodyStarts.set(envelope.id, head.length);
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
    const { handle, start } = await this.#openBody(messageId);
    // Read buffers sized to the body: a fixed 256 KB highWaterMark allocated 256 KB for each read
    // of a 10 KB message, and once more for the read that finds the end, so every delivery left
    // half a megabyte of buffers for the garbage collector. With `end` there is no read at EOF.
    let size: number;
    try {
      ({ size } = await handle.stat());
    } catch (error) {
      await handle.close();
      throw error;
    }
    if (size <= start) {
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream({ highWaterMark: Math.min(size - start, 256 * 1024), start, end: size - 1 });
  }

  /** The file a message's bytes are in, open, and where in it they start. */
  async #openBody(id: string): Promise<{ handle: FileHandle; start: number }> {
    const start = this.#bodyStarts.get(id);
    if (start !== undefined) return { handle: await open(this.#path("msg", `${id}.msg`), "r"), start };
    // The owner knows every .msg: anything else is an older version's .eml (or gone: ENOENT).
    const head = this.#owner ? undefined : await this.#readHead(id);
    if (head) return { handle: await open(this.#path("msg", `${id}.msg`), "r"), start: head.bodyStart };
    return { handle: await open(this.#path("msg", `${id}.eml`), "r"), start: 0 };
  }

  /** All records: the in-memory index for the owner, the files for a shared reader. */
  async #records(): Promise<StoredRecord[]> {
    if (this.#owner) return [...this.#messages.values()];
    const names = new Set(await readdir(this.#path("msg")));
    const ids = new Set<string>();
    for (const name of names) {
      if (name.endsWith(".msg")) ids.add(name.slice(0, -4));
      // An older version's message: its .json and its .eml.
      else if (name.endsWith(".eml") && names.has(`${name.slice(0, -4)}.json`)) ids.add(name.slice(0, -4));
    }
    const records: StoredRecord[] = [];
    for (const id of [...ids].sort()) {
      const record = await this.#readRecord(id);
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
