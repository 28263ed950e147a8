// The built-in floor for failed AUTH: per client (an IPv4 address, or an IPv6 /64, which one
// host usually owns whole), so many failures within a window lock the client out of AUTH until the
// window ends. It lives in this process's memory; @postern/rate-limit's `authFailures` rules count
// across a cluster through Redis and can sit beside it.
import { networkKey, parseIpAddress } from "@postern/core";

export interface FailureFloorOptions {
  /** Failures per client within the window before AUTH is refused outright. */
  perClient: number;
  windowSeconds: number;
}

/** Most clients tracked at once; past it, expired entries go first, then the oldest. */
const maxTracked = 100_000;

/** The counting key of a client address: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 per /64. */
export function clientKey(address: string): string {
  const parsed = parseIpAddress(address);
  return parsed ? networkKey(parsed, { ipv4: 32, ipv6: 64 }) : address.toLowerCase();
}

export class FailureFloor {
  readonly #options: FailureFloorOptions;
  readonly #now: () => number;
  readonly #counts = new Map<string, { count: number; resetAt: number }>();

  constructor(options: FailureFloorOptions, now: () => number = Date.now) {
    this.#options = options;
    this.#now = now;
  }

  /** The client reached the limit within the current window. */
  isLockedOut(address: string): boolean {
    const entry = this.#counts.get(clientKey(address));
    if (!entry) return false;
    if (entry.resetAt <= this.#now()) {
      this.#counts.delete(clientKey(address));
      return false;
    }
    return entry.count >= this.#options.perClient;
  }

  recordFailure(address: string): void {
    const key = clientKey(address);
    const now = this.#now();
    const entry = this.#counts.get(key);
    if (entry && entry.resetAt > now) {
      entry.count++;
      return;
    }
    if (this.#counts.size >= maxTracked) this.#prune(now);
    this.#counts.set(key, { count: 1, resetAt: now + this.#options.windowSeconds * 1000 });
  }

  #prune(now: number): void {
    for (const [key, entry] of this.#counts) if (entry.resetAt <= now) this.#counts.delete(key);
    for (const key of this.#counts.keys()) {
      if (this.#counts.size < maxTracked) break;
      this.#counts.delete(key);
    }
  }
}
