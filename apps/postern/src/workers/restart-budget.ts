// How often the primary of `postern start --workers N` starts a worker again after it died. A
// worker that dies now and then (an uncaught error exits 70, the OOM killer, an operator's kill)
// is replaced after a short pause that doubles with each recent death; one that keeps dying has a
// cause restarting won't fix — a broken config change, a full disk, a crash on every message — so
// past the budget the primary stops every worker and exits for its supervisor (systemd) to act.

export interface RestartPolicy {
  /** Deaths of one worker within `windowMs` that are still restarted; one more ends the server. */
  readonly maxRestarts: number;
  readonly windowMs: number;
  /** Pause before the first restart; it doubles with every death in the window. */
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
}

export const defaultRestartPolicy: RestartPolicy = {
  maxRestarts: 5,
  windowMs: 60_000,
  firstDelayMs: 100,
  maxDelayMs: 5000,
};

export type RestartDecision =
  | { readonly restart: true; readonly delayMs: number }
  | { readonly restart: false; readonly deaths: number };

export class RestartBudget {
  readonly policy: RestartPolicy;
  /** Per worker number, when it died (oldest first, only those within the window). */
  readonly #deaths = new Map<number, number[]>();

  constructor(policy: RestartPolicy = defaultRestartPolicy) {
    this.policy = policy;
  }

  /** Counts a death of worker `index` at `now` and says whether to start it again, and when. */
  died(index: number, now: number = Date.now()): RestartDecision {
    const recent = (this.#deaths.get(index) ?? []).filter((at) => now - at < this.policy.windowMs);
    recent.push(now);
    this.#deaths.set(index, recent);
    if (recent.length > this.policy.maxRestarts) return { restart: false, deaths: recent.length };
    const delayMs = Math.min(this.policy.maxDelayMs, this.policy.firstDelayMs * 2 ** (recent.length - 1));
    return { restart: true, delayMs };
  }
}
