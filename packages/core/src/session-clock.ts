// The two deadlines smtp-server's idle timer cannot enforce (it restarts on every byte, so a client
// trickling one byte a second never times out): a total session deadline, and a minimum data rate
// during DATA once a grace period passed. One shared sweep twice a second checks every watched
// session, instead of a timer per connection and per message on the hot path.
export interface SessionRules {
  readonly sessionTimeoutMs: number;
  /** Bytes per second; 0 turns the rate check off. */
  readonly minDataRate: number;
  readonly dataGraceMs: number;
}

interface Watched {
  readonly rules: SessionRules;
  readonly deadline: number;
  /** While in DATA: when it began and how many bytes arrived. */
  data: { readonly startedAt: number; readonly progress: { readonly received: number } } | undefined;
  readonly tooLong: () => void;
  readonly tooSlow: () => void;
}

const sweepEveryMs = 500;

export class SessionClock<Key> {
  readonly #watched = new Map<Key, Watched>();
  #timer: NodeJS.Timeout | undefined;

  /** Starts watching a session; `tooLong` runs once it outlives its listener's session timeout. */
  watch(key: Key, rules: SessionRules, tooLong: () => void, tooSlow: () => void): void {
    this.#watched.set(key, { rules, deadline: Date.now() + rules.sessionTimeoutMs, data: undefined, tooLong, tooSlow });
    this.#timer ??= setInterval(() => this.#sweep(), sweepEveryMs).unref();
  }

  /** DATA began; `progress.received` counts its bytes. */
  dataStarted(key: Key, progress: { readonly received: number }): void {
    const watched = this.#watched.get(key);
    if (watched && watched.rules.minDataRate > 0) watched.data = { startedAt: Date.now(), progress };
  }

  dataEnded(key: Key): void {
    const watched = this.#watched.get(key);
    if (watched) watched.data = undefined;
  }

  /** Stops watching a session. The sweep keeps running (unref'd): sessions come and go all the time. */
  forget(key: Key): void {
    this.#watched.delete(key);
  }

  /** Stops the sweep (the server stopped). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [key, watched] of this.#watched) {
      if (now >= watched.deadline) {
        this.forget(key);
        watched.tooLong();
        continue;
      }
      const data = watched.data;
      if (!data) continue;
      const elapsed = now - data.startedAt;
      if (elapsed < Math.max(1000, watched.rules.dataGraceMs)) continue;
      if ((data.progress.received * 1000) / elapsed < watched.rules.minDataRate) {
        this.forget(key);
        watched.tooSlow();
      }
    }
  }
}
