// A small, bounded pool of LMTP sessions, so a busy server does not pay a connect, a greeting and
// an LHLO (and Dovecot a new lmtp process) for every message. Sessions are reused most recently
// used first; at most `max` are open, and deliveries beyond that wait for one to come free.
//
// Between transactions: after the per-recipient replies to a message the transaction is over and
// the session is ready for the next MAIL FROM; after a transaction refused before the message
// (MAIL FROM, every RCPT or DATA) the server may still hold part of the envelope, so RSET comes
// first. A session is closed when it has carried `maxMessages` messages, after `idleTimeoutMs`
// without work, when it fails, and when the server closes it (LMTP servers drop idle clients).
// If a reused session turns out to be gone before any byte of the message was sent, the
// transaction runs again on another session: nothing was delivered, so nothing can be duplicated.
import {
  closeSession,
  describeTarget,
  LmtpConnectionError,
  type LmtpSession,
  type LmtpTransaction,
  openSession,
  type RecipientOutcome,
  resetSession,
  runTransaction,
  type SessionSettings,
} from "./lmtp-client.ts";

export interface PoolLimits {
  /** Sessions open at most (busy and idle). */
  max: number;
  /** An idle session is closed after this long. */
  idleTimeoutMs: number;
  /** A session is closed after this many transactions. */
  maxMessages: number;
}

interface Pooled {
  readonly session: LmtpSession;
  transactions: number;
  idleTimer: NodeJS.Timeout | undefined;
  gone: boolean;
}

interface Waiter {
  /** Hands over an idle session, or undefined: a slot came free, open a new one. */
  take(pooled: Pooled | undefined): void;
}

export class LmtpPool {
  readonly #settings: SessionSettings;
  readonly #limits: PoolLimits;
  readonly #where: string;
  /** Idle sessions, the most recently used last. */
  readonly #idle: Pooled[] = [];
  readonly #waiters: Waiter[] = [];
  /** Sessions open or opening, busy or idle. */
  #open = 0;
  #closed = false;
  #opened = 0;

  constructor(settings: SessionSettings, limits: PoolLimits) {
    this.#settings = settings;
    this.#limits = limits;
    this.#where = describeTarget(settings.target);
  }

  /** Sessions opened so far (for tests and figures). */
  get opened(): number {
    return this.#opened;
  }

  /** Sessions open now, busy or idle. */
  get size(): number {
    return this.#open;
  }

  /** One transaction on a pooled session; per-recipient outcomes, or LmtpConnectionError. */
  async deliver(transaction: LmtpTransaction): Promise<RecipientOutcome[]> {
    try {
      // A stale session can fail only before the message; each such failure closes one, so
      // this ends, at the latest on a session opened for this delivery (and is bounded anyway).
      for (let attempt = 0; ; attempt++) {
        const { pooled, reused } = await this.#acquire(transaction.signal);
        let result: Awaited<ReturnType<typeof runTransaction>>;
        try {
          result = await runTransaction(pooled.session, transaction, this.#where);
        } catch (error) {
          this.#drop(pooled);
          const stale = error instanceof LmtpConnectionError && !error.transferStarted && reused;
          if (stale && attempt < this.#limits.max && !transaction.signal.aborted) continue;
          throw error;
        }
        pooled.transactions++;
        // A transaction that did not complete needs RSET before the session is reused. Await it
        // then (one round trip, only for refused mail): released in the background, the session
        // was not back in the pool when the client's next message came, which opened another.
        if (result.completed) void this.#release(pooled, true);
        else await this.#release(pooled, false);
        return result.outcomes;
      }
    } catch (error) {
      // Not sent after all: release what the message stream holds (a spool file) now.
      transaction.message.destroy();
      throw error;
    }
  }

  /** Closes idle sessions now and busy ones when their transaction ends; later deliveries fail. */
  close(): void {
    this.#closed = true;
    for (const pooled of this.#idle.splice(0)) this.#retire(pooled);
    for (const waiter of this.#waiters.splice(0)) waiter.take(undefined);
  }

  async #acquire(signal: AbortSignal): Promise<{ pooled: Pooled; reused: boolean }> {
    for (;;) {
      signal.throwIfAborted();
      if (this.#closed) throw new LmtpConnectionError(`LMTP pool for ${this.#where} is closed`, "ECLOSED", false);
      const idle = this.#idle.pop();
      if (idle) {
        clearTimeout(idle.idleTimer);
        return { pooled: idle, reused: true };
      }
      if (this.#open < this.#limits.max) return { pooled: await this.#openOne(signal), reused: false };
      const handed = await this.#wait(signal);
      if (handed) return { pooled: handed, reused: true };
    }
  }

  async #openOne(signal: AbortSignal): Promise<Pooled> {
    this.#open++;
    let session: LmtpSession;
    try {
      session = await openSession(this.#settings, signal);
    } catch (error) {
      this.#open--;
      this.#wakeOne();
      throw error;
    }
    this.#opened++;
    const pooled: Pooled = { session, transactions: 0, idleTimer: undefined, gone: false };
    // The server closing the session (idle timeout, shutdown) or the socket failing.
    session.once("end", () => this.#drop(pooled));
    return pooled;
  }

  #wait(signal: AbortSignal): Promise<Pooled | undefined> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const index = this.#waiters.indexOf(waiter);
        if (index !== -1) this.#waiters.splice(index, 1);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        take(pooled) {
          signal.removeEventListener("abort", onAbort);
          resolve(pooled);
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** A slot came free: the first waiter may open a session. */
  #wakeOne(): void {
    this.#waiters.shift()?.take(undefined);
  }

  async #release(pooled: Pooled, completed: boolean): Promise<void> {
    if (!completed) {
      try {
        await resetSession(pooled.session);
      } catch {
        this.#drop(pooled);
        return;
      }
    }
    if (pooled.gone) return;
    if (this.#closed || pooled.transactions >= this.#limits.maxMessages) {
      this.#retire(pooled);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter.take(pooled);
      return;
    }
    pooled.idleTimer = setTimeout(() => {
      const index = this.#idle.indexOf(pooled);
      if (index !== -1) this.#idle.splice(index, 1);
      this.#retire(pooled);
    }, this.#limits.idleTimeoutMs);
    pooled.idleTimer.unref();
    this.#idle.push(pooled);
  }

  /** Closes a healthy session politely (QUIT) and frees its slot. */
  #retire(pooled: Pooled): void {
    if (pooled.gone) return;
    this.#forget(pooled);
    closeSession(pooled.session);
  }

  /** Closes a session that failed or went away, and frees its slot. */
  #drop(pooled: Pooled): void {
    if (pooled.gone) return;
    this.#forget(pooled);
    pooled.session.close();
  }

  #forget(pooled: Pooled): void {
    pooled.gone = true;
    clearTimeout(pooled.idleTimer);
    const index = this.#idle.indexOf(pooled);
    if (index !== -1) this.#idle.splice(index, 1);
    this.#open--;
    this.#wakeOne();
  }
}
