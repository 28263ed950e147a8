// Which recipients of a transaction were already stored, for a transaction whose reply was 4xx
// because a later route group failed. SMTP answers once per message: when the `relay` group is in
// the outbound queue and the `local` store is out of space, the client must hear 451 (or the local
// copies are lost) and will send the whole transaction again. Remembering the relay recipients
// here, keyed by a fingerprint of the transaction, lets the retry store only the local group.
//
// The fingerprint covers the sender and recipients (with their routes) as they were when the data
// hooks began, and the message bytes as received: core's own fields (Received) and the data hooks'
// rewriting differ per attempt, the client's transaction does not. Only a transaction with the
// same envelope and the same bytes is taken for a retry; anything else is stored in full (at worst
// a duplicate, never a loss).
//
// Nothing is hashed on the common path: a transaction is hashed only when one of its groups was
// stored and a later one failed, or when a remembered transaction has its sender and size (a cheap
// test, as @postern/lmtp does per recipient).
//
// It lives in memory, bounded in recipients and time: after a restart, a reload, or on another
// worker or node, a retry stores every group again — a duplicate, never a loss.
import { createHash } from "node:crypto";
import { addressKey } from "./address.ts";

export interface RouteMemoryOptions {
  /** The most recipients remembered, over every transaction (0 turns the memory off). */
  maxEntries: number;
  /** How long a transaction is remembered after its last failed attempt. */
  ttlMs: number;
}

/** A transaction as the client sent it: what its fingerprint covers besides the bytes. */
export interface TransactionEnvelope {
  readonly sender: string;
  readonly recipients: readonly { readonly address: string; readonly route: string }[];
}

interface Entry {
  readonly candidate: string;
  readonly stored: ReadonlySet<string>;
  readonly until: number;
}

/** A recipient stored under a route, as remembered (the address compared as addresses are). */
export function storedKey(route: string, address: string): string {
  return `${route}\n${addressKey(address)}`;
}

/** sha256 over the envelope (recipients sorted) and the message bytes as received. */
export async function transactionFingerprint(
  envelope: TransactionEnvelope,
  original: AsyncIterable<Buffer>,
): Promise<string> {
  const recipients = envelope.recipients.map((recipient) => storedKey(recipient.route, recipient.address)).sort();
  // JSON keeps the parts apart: no address or route can run into the next one.
  const hash = createHash("sha256").update(`${JSON.stringify([addressKey(envelope.sender), recipients])}\n`);
  for await (const chunk of original) hash.update(chunk);
  return hash.digest("hex");
}

export class RouteMemory {
  /** Fingerprint → entry; Map order is the order of expiry (every entry gets the same TTL). */
  readonly #entries = new Map<string, Entry>();
  /** Sender + size → how many entries have them: the test that decides whether to hash. */
  readonly #candidates = new Map<string, number>();
  readonly #options: RouteMemoryOptions;
  #recipients = 0;

  constructor(options: RouteMemoryOptions) {
    this.#options = options;
  }

  /** Transactions remembered. */
  get size(): number {
    return this.#entries.size;
  }

  /** Recipients remembered, over every transaction (what maxEntries bounds). */
  get recipients(): number {
    return this.#recipients;
  }

  static candidateKey(sender: string, size: number): string {
    return `${addressKey(sender)}\n${size}`;
  }

  /** Whether a remembered transaction has this sender and size (then it is worth hashing). */
  mightHave(candidate: string, now = Date.now()): boolean {
    if (this.#entries.size === 0) return false;
    this.#expire(now);
    return this.#candidates.has(candidate);
  }

  /** The recipients (storedKey) a transaction with this fingerprint had stored, if remembered. */
  recall(fingerprint: string, now = Date.now()): ReadonlySet<string> | undefined {
    const entry = this.#entries.get(fingerprint);
    if (!entry) return undefined;
    if (entry.until <= now) {
      this.#delete(fingerprint, entry);
      return undefined;
    }
    return entry.stored;
  }

  /**
   * Remembers what a transaction had stored, replacing what was remembered for it, for ttlMs from
   * now. Oldest transactions are forgotten past maxEntries recipients; false when this one alone
   * has more than that (it is not remembered: its retry stores every group again).
   */
  remember(fingerprint: string, candidate: string, stored: ReadonlySet<string>, now = Date.now()): boolean {
    const previous = this.#entries.get(fingerprint);
    if (previous) this.#delete(fingerprint, previous);
    if (stored.size === 0 || stored.size > this.#options.maxEntries) return false;
    this.#expire(now);
    while (this.#recipients + stored.size > this.#options.maxEntries) {
      const [oldest, entry] = this.#entries.entries().next().value!;
      this.#delete(oldest, entry);
    }
    this.#entries.set(fingerprint, { candidate, stored, until: now + this.#options.ttlMs });
    this.#candidates.set(candidate, (this.#candidates.get(candidate) ?? 0) + 1);
    this.#recipients += stored.size;
    return true;
  }

  /** Forgets a transaction (its retry stored the rest). */
  forget(fingerprint: string): void {
    const entry = this.#entries.get(fingerprint);
    if (entry) this.#delete(fingerprint, entry);
  }

  #expire(now: number): void {
    for (const [fingerprint, entry] of this.#entries) {
      if (entry.until > now) break;
      this.#delete(fingerprint, entry);
    }
  }

  #delete(fingerprint: string, entry: Entry): void {
    this.#entries.delete(fingerprint);
    this.#recipients -= entry.stored.size;
    const count = (this.#candidates.get(entry.candidate) ?? 1) - 1;
    if (count > 0) this.#candidates.set(entry.candidate, count);
    else this.#candidates.delete(entry.candidate);
  }
}
