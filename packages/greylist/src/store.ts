// Where greylisting remembers what it has seen, behind one interface: the memory store (one
// process) and the Redis store (several nodes) decide alike, which one conformance suite checks.
// A store makes the whole decision for a triplet in one step — look, decide, write — so two nodes
// seeing the same retry at once cannot both count it, and it takes the time from the caller, so
// tests move a clock instead of sleeping.
import type { Logger } from "@postern/core";

/** The timings of a decision, in milliseconds. */
export interface GreylistTimings {
  /** How long a first attempt must wait before a retry passes. */
  readonly delayMs: number;
  /** How long a first attempt waits for its retry; later it counts as new again. */
  readonly retryWindowMs: number;
  /** How long a passed triplet (and an auto-allowlisted network) is remembered since it was last seen. */
  readonly passedForMs: number;
  /** Passed triplets after which the whole network passes; 0 never. */
  readonly autoAllowAfter: number;
}

export interface TripletCheck {
  /** The triplet's key (network, sender and recipient, hashed). */
  readonly triplet: string;
  /** The client's network ("192.0.2.0/24"), for automatic allowlisting. */
  readonly network: string;
  /** Now, in ms since the epoch. */
  readonly now: number;
}

export type GreylistDecision =
  /** The triplet passed before and is seen again. */
  | { readonly kind: "pass"; readonly why: "known"; readonly firstSeen: number }
  /** The retry came after the delay, within the window: it passes from now on. */
  | { readonly kind: "pass"; readonly why: "retried"; readonly firstSeen: number; readonly networkPasses: number }
  /** The network has passed `autoAllowAfter` triplets: everything from it passes. */
  | { readonly kind: "pass"; readonly why: "network"; readonly networkPasses: number }
  /** First seen now (or its window ran out): try again after the delay. */
  | { readonly kind: "defer"; readonly why: "new"; readonly firstSeen: number; readonly retryAt: number }
  /** Seen before, but the delay has not passed yet. */
  | { readonly kind: "defer"; readonly why: "early"; readonly firstSeen: number; readonly retryAt: number };

export interface GreylistStore {
  /** "memory", "redis" or a third party's name, for logs. */
  readonly kind: string;
  /** Where it is, for log lines ("redis://127.0.0.1:6379"); no secrets. */
  readonly where: string;
  /** Decides for one triplet and records what happened; throws when the store cannot answer. */
  check(request: TripletCheck, timings: GreylistTimings): Promise<GreylistDecision>;
  /** Connects; never throws for an unreachable store (checks report the outage). */
  open?(log: Logger): Promise<void>;
  /** Resolves while the store answers, rejects with why not (for /readyz); optional. */
  ping?(): Promise<void>;
  close?(): Promise<void>;
}
