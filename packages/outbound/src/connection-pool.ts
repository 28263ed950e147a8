// Keeps delivery connections open between messages to the same next hop, so a burst of mail to
// one domain costs one TCP + TLS handshake instead of one per message. Idle connections close
// after a short time; a connection carries at most `maxMessages` messages.
//
// Under a throttle's `connections` limit a new connection first takes a slot of each counter that
// applies (see throttle.ts), held until its socket has closed. A delivery that finds them full
// waits a bounded time: for a connection another delivery hands back, for a slot freed here (or,
// with Redis, by another node: looked at again every pollMs), closing an idle connection under the
// same counter to make room. Past the wait it is told to go back to the queue (ThrottledError).

import type { NextHop } from "./routing.ts";
import { type SessionSettings, SmtpSession, sessionKey } from "./smtp-session.ts";
import type { ConnectionSlots, SlotKey, SlotLease } from "./throttle.ts";

export interface PoolOptions {
  reuse: boolean;
  maxMessages: number;
  idleTimeoutMs: number;
  settings: SessionSettings;
  /** Connection slots of the throttles; none means no connection limits. */
  slots?: ConnectionSlots | undefined;
  /** How long acquire() waits for a slot under a connection limit. */
  slotWaitMs?: number | undefined;
}

export interface AcquireOptions {
  plaintext?: boolean;
  fresh?: boolean;
  /** Connection counters this connection counts against (Throttle.connectionKeys). */
  slots?: readonly SlotKey[];
}

/** No connection could be had within the wait: every slot of a connection limit is taken. */
export class ThrottledError extends Error {
  readonly rule: string;
  readonly retryAfterMs: number;
  constructor(rule: string, retryAfterMs: number) {
    super(`connection limit reached (throttle ${rule})`);
    this.name = "ThrottledError";
    this.rule = rule;
    this.retryAfterMs = retryAfterMs;
  }
}

interface Idle {
  session: SmtpSession;
  timer: NodeJS.Timeout;
  /** Shared counters: the next look whether another node waits for this connection's slot. */
  check?: NodeJS.Timeout | undefined;
}

interface Tracked {
  /** Idle connections are found by this: the session key plus the counters it holds slots of. */
  readonly poolKey: string;
  readonly slotIds: ReadonlySet<string>;
}

interface Waiter {
  readonly poolKey: string;
  /** Takes a connection handed back (false for plaintext and fresh requests). */
  readonly takesHandoff: boolean;
  wake(session: SmtpSession | undefined): void;
}

function clearIdle(idle: Idle): void {
  clearTimeout(idle.timer);
  clearTimeout(idle.check);
}

export class ConnectionPool {
  readonly #options: PoolOptions;
  readonly #idle = new Map<string, Idle[]>();
  readonly #busy = new Set<SmtpSession>();
  readonly #tracked = new WeakMap<SmtpSession, Tracked>();
  readonly #waiters: Waiter[] = [];
  /** Connections opened since start (for metrics and the benchmark). */
  opened = 0;
  #closed = false;

  constructor(options: PoolOptions) {
    this.#options = options;
  }

  /** An idle live connection to `hop`, or a new one. `reused` tells which. */
  async acquire(hop: NextHop, options: AcquireOptions = {}): Promise<{ session: SmtpSession; reused: boolean }> {
    const slots = this.#options.slots && options.slots?.length ? options.slots : [];
    const poolKey = slots.length > 0 ? `${sessionKey(hop)}#${slots.map((slot) => slot.id).join(",")}` : sessionKey(hop);
    const reusable = this.#options.reuse && !options.fresh && !options.plaintext;
    if (reusable) {
      const idle = this.#takeIdle(poolKey);
      if (idle) return { session: idle, reused: true };
    }
    if (slots.length === 0) return { session: await this.#open(hop, options, poolKey, undefined, []), reused: false };
    const waitMs = this.#options.slotWaitMs ?? 0;
    const deadline = Date.now() + waitMs;
    const wanted = new Set(slots.map((slot) => slot.id));
    // Which counter is full is not known here (all are taken at once, or none): name them all.
    const rules = [...new Set(slots.map((slot) => slot.rule))].join(", ");
    for (;;) {
      // Shutting down: a waiting delivery goes back to the queue rather than open a connection now.
      if (this.#closed) throw new ThrottledError(rules, Math.max(waitMs, 100));
      const lease = await this.#options.slots!.acquire(slots);
      if (lease) return { session: await this.#open(hop, options, poolKey, lease, slots), reused: false };
      // An idle connection under the same counter (to another address of the host, say) makes room.
      this.#evictIdle(wanted, poolKey);
      const left = deadline - Date.now();
      if (left <= 0) throw new ThrottledError(rules, Math.max(waitMs, 100));
      const handed = await this.#wait(poolKey, reusable, left);
      if (handed) return { session: handed, reused: true };
      if (reusable) {
        const idle = this.#takeIdle(poolKey);
        if (idle) return { session: idle, reused: true };
      }
    }
  }

  #takeIdle(poolKey: string): SmtpSession | undefined {
    const list = this.#idle.get(poolKey);
    while (list && list.length > 0) {
      const idle = list.pop()!;
      clearIdle(idle);
      if (!idle.session.alive) {
        idle.session.close();
        continue;
      }
      this.#busy.add(idle.session);
      return idle.session;
    }
    return undefined;
  }

  async #open(
    hop: NextHop,
    options: AcquireOptions,
    poolKey: string,
    lease: SlotLease | undefined,
    slots: readonly SlotKey[],
  ): Promise<SmtpSession> {
    let session: SmtpSession;
    try {
      session = await SmtpSession.open(hop, this.#options.settings, options);
    } catch (error) {
      lease?.release();
      throw error;
    }
    this.opened++;
    this.#busy.add(session);
    this.#tracked.set(session, { poolKey, slotIds: new Set(slots.map((slot) => slot.id)) });
    session.onceClosed(() => {
      this.#forget(session);
      lease?.release();
    });
    return session;
  }

  /** Waits for a connection handed back under `poolKey`, a freed slot, the next poll, or the deadline. */
  #wait(poolKey: string, takesHandoff: boolean, leftMs: number): Promise<SmtpSession | undefined> {
    const slots = this.#options.slots!;
    return new Promise((resolve) => {
      const pollMs = slots.pollMs;
      const timer = setTimeout(() => waiter.wake(undefined), pollMs === undefined ? leftMs : Math.min(pollMs, leftMs));
      const unsubscribe = slots.onFreed(() => waiter.wake(undefined));
      const waiter: Waiter = {
        poolKey,
        takesHandoff,
        wake: (session) => {
          clearTimeout(timer);
          unsubscribe();
          const index = this.#waiters.indexOf(waiter);
          if (index !== -1) this.#waiters.splice(index, 1);
          resolve(session);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Closes one idle connection that holds a slot of `wanted` and is not itself usable (`poolKey`). */
  #evictIdle(wanted: ReadonlySet<string>, poolKey: string): void {
    for (const [key, list] of this.#idle) {
      if (key === poolKey) continue;
      const index = list.findIndex((idle) => {
        const tracked = this.#tracked.get(idle.session);
        return tracked !== undefined && [...tracked.slotIds].some((id) => wanted.has(id));
      });
      if (index === -1) continue;
      const [idle] = list.splice(index, 1);
      if (list.length === 0) this.#idle.delete(key);
      clearIdle(idle!);
      idle!.session.close();
      return;
    }
  }

  /** A closed connection leaves the idle lists (a peer may hang up on an idle one). */
  #forget(session: SmtpSession): void {
    this.#busy.delete(session);
    const poolKey = this.#tracked.get(session)?.poolKey ?? session.key;
    const list = this.#idle.get(poolKey);
    const index = list?.findIndex((idle) => idle.session === session) ?? -1;
    if (index === -1) return;
    clearIdle(list![index]!);
    list!.splice(index, 1);
    if (list!.length === 0) this.#idle.delete(poolKey);
  }

  /** Hands a connection back: to a delivery waiting for it, kept for the next message, or closed. */
  release(session: SmtpSession, reusable: boolean): void {
    this.#busy.delete(session);
    if (!reusable || !this.#options.reuse || !session.alive || session.messages >= this.#options.maxMessages) {
      session.close();
      return;
    }
    const poolKey = this.#tracked.get(session)?.poolKey ?? session.key;
    const waiter = this.#waiters.find((candidate) => candidate.takesHandoff && candidate.poolKey === poolKey);
    if (waiter) {
      this.#busy.add(session);
      waiter.wake(session);
      return;
    }
    const list = this.#idle.get(poolKey) ?? [];
    const drop = () => {
      const current = this.#idle.get(poolKey);
      const index = current?.findIndex((idle) => idle.session === session) ?? -1;
      if (index === -1) return;
      clearIdle(current![index]!);
      current!.splice(index, 1);
      if (current!.length === 0) this.#idle.delete(poolKey);
      session.close();
    };
    const timer = setTimeout(drop, this.#options.idleTimeoutMs);
    timer.unref();
    const entry: Idle = { session, timer };
    list.push(entry);
    this.#idle.set(poolKey, list);
    const ids = [...(this.#tracked.get(session)?.slotIds ?? [])];
    const contested = this.#options.slots?.contested;
    if (ids.length > 0 && contested) {
      // Another node waiting for this slot gets it now, not after our idle timeout.
      const look = () => {
        entry.check = setTimeout(async () => {
          if (!this.#idle.get(poolKey)?.includes(entry)) return;
          if (await contested(ids)) drop();
          else look();
        }, this.#options.slots?.pollMs ?? 100);
        entry.check.unref();
      };
      look();
    }
  }

  closeAll(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) {
      for (const idle of list) {
        clearIdle(idle);
        idle.session.close();
      }
    }
    this.#idle.clear();
    for (const session of this.#busy) session.close();
    this.#busy.clear();
    for (const waiter of [...this.#waiters]) waiter.wake(undefined);
  }
}
