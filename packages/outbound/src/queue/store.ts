// The queue store contract. Every store (filesystem spool, PostgreSQL) keeps the same records and
// passes the same conformance suite (queue-store.test.ts), so the delivery code never knows which
// one it talks to.
//
// The unit of work is a recipient: each carries its own state, attempt count and next attempt
// time. Workers *claim* due recipients under a lease, deliver them, and report one outcome per
// recipient; a message is removed once none of its recipients is still queued.
import type { Readable } from "node:stream";

/** "held": kept out of delivery by an operator until released (Postfix's hold queue). */
export type RecipientState = "queued" | "held" | "delivered" | "bounced";

/** The last reply seen for a recipient (from the next hop, or made up locally: DNS, TLS…). */
export interface DeliveryReply {
  /** SMTP basic code (250, 451, 550…). */
  readonly code: number;
  /** RFC 3463 enhanced status, e.g. "5.1.1". */
  readonly status: string;
  readonly text: string;
  /** The host that answered, when one did ("mx1.example.com [192.0.2.1]"). */
  readonly remote?: string | undefined;
}

export interface RecipientRecord {
  /** Position in the message's recipient list; with the message ID, the recipient's key. */
  readonly index: number;
  readonly address: string;
  /** Lower-case domain part, what routing and per-domain limits go by. */
  readonly domain: string;
  /** DSN NOTIFY (RFC 3461) as given by the client; undefined means the default (FAILURE). */
  readonly notify?: readonly string[] | undefined;
  readonly orcpt?: string | undefined;
  readonly state: RecipientState;
  readonly attempts: number;
  /** Epoch milliseconds. */
  readonly nextAttemptAt: number;
  readonly lastReply?: DeliveryReply | undefined;
  /** Epoch ms when a delay report (RFC 3464 "delayed") went to the sender; undefined until then. */
  readonly delayReportedAt?: number | undefined;
}

/** What travels with the message besides its recipients. */
export interface MessageEnvelope {
  /** The queue ID (core's, for relayed mail). Letters, digits, '.', '_' and '-' only. */
  readonly id: string;
  /** Envelope sender; "" for the null sender (bounces). */
  readonly from: string;
  /** Epoch milliseconds; max age and DSN arrival date count from here. */
  readonly createdAt: number;
  readonly size: number;
  /** RFC 8689 REQUIRETLS was given when the message was received. */
  readonly requireTls: boolean;
  readonly smtpUtf8: boolean;
  /** "7bit" or "8bitmime". */
  readonly bodyType: string;
  readonly dsn?: { readonly ret: string | null; readonly envid: string | null } | undefined;
  /** "dsn" marks our own delivery reports, which never cause reports themselves. */
  readonly kind: "relay" | "dsn";
}

export interface QueuedMessage extends MessageEnvelope {
  readonly recipients: readonly RecipientRecord[];
}

export interface NewRecipient {
  readonly address: string;
  readonly notify?: readonly string[] | undefined;
  readonly orcpt?: string | undefined;
}

/** Recipients of one message claimed by one worker. */
export interface Claim {
  readonly message: MessageEnvelope;
  readonly recipients: readonly RecipientRecord[];
}

export type RecipientOutcome =
  | { readonly index: number; readonly result: "delivered" | "bounced"; readonly reply: DeliveryReply }
  | {
      readonly index: number;
      readonly result: "deferred";
      readonly reply: DeliveryReply;
      /** Delay before the next attempt; the store adds it to its own clock. */
      readonly retryAfterMs: number;
      /** A delay report went to the sender with this attempt (recorded once, never sent again). */
      readonly delayReported?: boolean | undefined;
    };

export interface ClaimOptions {
  /** Who holds the lease; unique per running worker. */
  readonly worker: string;
  /**
   * Most deliveries to claim. A delivery is the due recipients of one message at one domain
   * (they go in one SMTP transaction), so a claim never splits them: a worker takes only as many
   * deliveries as it can start, and other nodes get the rest.
   */
  readonly limit: number;
  /** How long the claim holds without renew(); a crashed worker's claims expire after this. */
  readonly leaseMs: number;
}

export interface QueueStats {
  readonly messages: number;
  /** Recipients still to deliver. */
  readonly queued: number;
  /** Queued recipients that failed at least once. */
  readonly deferred: number;
  /** Queued recipients under a live lease (being delivered right now). */
  readonly active: number;
  /** Recipients on hold (not counted in `queued`). */
  readonly held: number;
  /** Creation time of the oldest message, epoch ms; undefined when empty. */
  readonly oldestCreatedAt: number | undefined;
  /** Queued recipients per domain, largest first. */
  readonly domains: readonly { readonly domain: string; readonly queued: number }[];
}

export interface ReleaseOptions {
  /** Not due again before this many milliseconds from now (by the store's clock). */
  readonly delayMs?: number;
}

export interface ListOptions {
  readonly limit?: number;
}

export interface QueueStore {
  /** "fs" or "postgres"; for logs and `postern queue stats`. */
  readonly kind: string;
  /**
   * Bodies up to this many bytes are cheaper to store when enqueue() gets them as one Buffer
   * (PostgreSQL: one statement instead of a transaction of five; files: one write). The queue
   * hook gathers a message that small (core holds it in memory already below its spool
   * threshold) and streams anything larger. Undefined: the store takes a stream as well.
   */
  readonly bodyBufferLimit?: number | undefined;
  /** Creates what is missing (folders, schema) and recovers state left by a previous run. */
  open(): Promise<void>;
  close(): Promise<void>;

  /** Stores the message durably; when this resolves the message survives a crash. */
  enqueue(envelope: MessageEnvelope, recipients: readonly NewRecipient[], body: Readable | Buffer): Promise<void>;
  /** Due recipients (queued, next attempt passed, not leased by a live worker), first in first out, by delivery. */
  claim(options: ClaimOptions): Promise<Claim[]>;
  /** Extends every lease `worker` holds; returns how many recipients it still holds. */
  renew(worker: string, leaseMs: number): Promise<number>;
  /**
   * Gives claims back without an attempt: shutdown before delivery started, or a throttle held
   * the delivery back (then `delayMs` makes them due that much later; attempts and the last reply
   * stay as they were).
   */
  release(worker: string, messageId: string, indexes: readonly number[], options?: ReleaseOptions): Promise<void>;
  /**
   * Records one attempt's outcomes for recipients `worker` holds, ends their leases, and removes
   * the message once no recipient is queued or held. Returns the indexes actually recorded (a lease
   * another worker took over after expiry is not overwritten).
   */
  complete(worker: string, messageId: string, outcomes: readonly RecipientOutcome[]): Promise<number[]>;
  /** The stored message bytes. */
  body(messageId: string): Promise<Readable>;

  // Operator view and steering.
  get(messageId: string): Promise<QueuedMessage | undefined>;
  list(options?: ListOptions): Promise<QueuedMessage[]>;
  /** Makes queued recipients due now (one message, or all when undefined). Returns how many. */
  retry(messageId?: string): Promise<number>;
  /**
   * Puts a message's queued recipients on hold: nothing delivers them, retry() leaves them, until
   * unhold(). One being delivered right now finishes its attempt. Returns how many were held.
   */
  hold(messageId: string): Promise<number>;
  /** Releases a message's held recipients, due now. Returns how many. */
  unhold(messageId: string): Promise<number>;
  /** Removes a message without delivering it. */
  delete(messageId: string): Promise<boolean>;
  stats(): Promise<QueueStats>;
  /**
   * Resolves while the store can take mail; rejects with the reason (the database does not
   * answer, the spool is not writable). Cheap: /readyz of @postern/metrics asks it every probe.
   */
  ready(): Promise<void>;
  /** When the next queued recipient falls due (epoch ms), for the scheduler's sleep. */
  nextDue(): Promise<number | undefined>;

  // Small persistent cache (MTA-STS policies), keyed by name.
  loadCached(key: string): Promise<unknown>;
  saveCached(key: string, value: unknown): Promise<void>;
}

const idPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Queue IDs become file names and SQL keys; refuse anything that could escape either. */
export function assertMessageId(id: string): void {
  if (!idPattern.test(id)) throw new TypeError(`invalid queue ID ${JSON.stringify(id)}`);
}

/** The domain part of an address, lower-cased; "" when there is none. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at === -1 ? "" : address.slice(at + 1).toLowerCase();
}
