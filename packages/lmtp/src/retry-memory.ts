// Which recipients of a message were already delivered, for a message that had to be deferred
// because of other recipients. LMTP answers per recipient, SMTP only once per message: when Alice's
// copy is stored and Bob's mailbox is temporarily full, the sender must hear 4xx (or Bob's copy is
// lost) and will send the same message to both again. Remembering Alice here, keyed by a digest of
// the original bytes, the sender and her address, lets the retry go to Bob only.
//
// It lives in memory: after a restart, or on another node behind a load balancer, a retry
// delivers Alice's copy again — a duplicate, never a loss.

export interface RetryMemoryOptions {
  maxEntries: number;
  ttlMs: number;
}

export class RetryMemory {
  readonly #entries = new Map<string, number>();
  readonly #options: RetryMemoryOptions;
  /** Sender + size of messages with entries: a cheap test before hashing a message. */
  readonly #candidates = new Map<string, number>();

  constructor(options: RetryMemoryOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  static candidateKey(mailFrom: string, size: number): string {
    return `${mailFrom.toLowerCase()}\n${size}`;
  }

  static key(digest: string, mailFrom: string, recipient: string): string {
    return `${digest}\n${mailFrom.toLowerCase()}\n${recipient.toLowerCase()}`;
  }

  /** Whether any remembered message has this sender and size (then it is worth hashing). */
  mightHave(mailFrom: string, size: number, now = Date.now()): boolean {
    const until = this.#candidates.get(RetryMemory.candidateKey(mailFrom, size));
    return until !== undefined && until > now;
  }

  has(key: string, now = Date.now()): boolean {
    const until = this.#entries.get(key);
    if (until === undefined) return false;
    if (until <= now) {
      this.#entries.delete(key);
      return false;
    }
    return true;
  }

  remember(keys: readonly string[], mailFrom: string, size: number, now = Date.now()): void {
    const until = now + this.#options.ttlMs;
    for (const key of keys) {
      this.#entries.delete(key); // re-insert: Map order is the eviction order
      this.#entries.set(key, until);
    }
    this.#candidates.set(RetryMemory.candidateKey(mailFrom, size), until);
    // Oldest first; bounded so a flood of partial failures cannot grow memory without limit.
    for (const [key, expiry] of this.#entries) {
      if (this.#entries.size <= this.#options.maxEntries && expiry > now) break;
      this.#entries.delete(key);
    }
    for (const [key, expiry] of this.#candidates) {
      if (this.#candidates.size <= this.#options.maxEntries && expiry > now) break;
      this.#candidates.delete(key);
    }
  }

  forget(keys: readonly string[]): void {
    for (const key of keys) this.#entries.delete(key);
  }
}
