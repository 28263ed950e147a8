// Keeps delivery connections open between messages to the same next hop, so a burst of mail to
// one domain costs one TCP + TLS handshake instead of one per message. Idle connections close
// after a short time; a connection carries at most `maxMessages` messages.

import type { NextHop } from "./routing.ts";
import { type SessionSettings, SmtpSession, sessionKey } from "./smtp-session.ts";

export interface PoolOptions {
  reuse: boolean;
  maxMessages: number;
  idleTimeoutMs: number;
  settings: SessionSettings;
}

interface Idle {
  session: SmtpSession;
  timer: NodeJS.Timeout;
}

export class ConnectionPool {
  readonly #options: PoolOptions;
  readonly #idle = new Map<string, Idle[]>();
  readonly #busy = new Set<SmtpSession>();
  /** Connections opened since start (for metrics and the benchmark). */
  opened = 0;

  constructor(options: PoolOptions) {
    this.#options = options;
  }

  /** An idle live connection to `hop`, or a new one. `reused` tells which. */
  async acquire(
    hop: NextHop,
    options: { plaintext?: boolean; fresh?: boolean } = {},
  ): Promise<{ session: SmtpSession; reused: boolean }> {
    if (this.#options.reuse && !options.fresh && !options.plaintext) {
      const list = this.#idle.get(sessionKey(hop));
      while (list && list.length > 0) {
        const idle = list.pop()!;
        clearTimeout(idle.timer);
        if (!idle.session.alive) continue;
        this.#busy.add(idle.session);
        return { session: idle.session, reused: true };
      }
    }
    const session = await SmtpSession.open(hop, this.#options.settings, options);
    this.opened++;
    this.#busy.add(session);
    return { session, reused: false };
  }

  /** Hands a connection back: kept for the next message when it is reusable, else closed. */
  release(session: SmtpSession, reusable: boolean): void {
    this.#busy.delete(session);
    if (!reusable || !this.#options.reuse || !session.alive || session.messages >= this.#options.maxMessages) {
      session.close();
      return;
    }
    const list = this.#idle.get(session.key) ?? [];
    const timer = setTimeout(() => {
      const current = this.#idle.get(session.key);
      const index = current?.findIndex((idle) => idle.session === session) ?? -1;
      if (index !== -1) current!.splice(index, 1);
      session.close();
    }, this.#options.idleTimeoutMs);
    timer.unref();
    list.push({ session, timer });
    this.#idle.set(session.key, list);
  }

  closeAll(): void {
    for (const list of this.#idle.values()) {
      for (const idle of list) {
        clearTimeout(idle.timer);
        idle.session.close();
      }
    }
    this.#idle.clear();
    for (const session of this.#busy) session.close();
    this.#busy.clear();
  }
}
