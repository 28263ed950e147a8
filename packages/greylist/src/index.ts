// @postern/greylist — greylisting. A client network, envelope sender and recipient never seen
// together are answered 451 4.7.1 with when to retry; a real MTA retries, and after the delay the
// triplet passes from then on. Networks that passed enough triplets pass entirely; allowlisted
// networks, sender domains and client names, authenticated sessions and the server's own mail are
// never greylisted. State lives in memory or in Redis shared by several nodes.
import {
  defer,
  type Logger,
  localListener,
  type Plugin,
  parseIpAddress,
  parseOptions,
  type ResultKey,
  resultKey,
  type Session,
  type Transaction,
  type Verdict,
} from "@postern/core";
import { type AllowReason, clientNameAllowed, senderDomainAllowed } from "./allowlist.ts";
import { humanDuration } from "./duration.ts";
import { memoryStore } from "./memory-store.ts";
import { type GreylistOptions, greylistOptionsSchema } from "./options.ts";
import { redisStore } from "./redis-store.ts";
import type { GreylistDecision, GreylistStore, GreylistTimings } from "./store.ts";
import { clientNetwork, tripletKey } from "./triplet.ts";

export type { GreylistErrorCode } from "./errors.ts";
export { GreylistError } from "./errors.ts";
export type { MemoryStoreOptions } from "./memory-store.ts";
export { memoryStore } from "./memory-store.ts";
export type { GreylistOptions, GreylistRedisOptions } from "./options.ts";
export type { RedisStoreOptions } from "./redis-store.ts";
export { redisStore } from "./redis-store.ts";
export type { GreylistDecision, GreylistStore, GreylistTimings, TripletCheck } from "./store.ts";

/** One greylisting decision, for a recipient (stage "rcpt") or a whole message (stage "data"). */
export type GreylistCheck =
  | { readonly outcome: "skipped"; readonly reason: "authenticated" | "local" | "no-address" | AllowReason }
  | { readonly outcome: "passed"; readonly reason: "known" | "retried" | "network"; readonly recipient: string }
  | {
      readonly outcome: "deferred";
      readonly reason: "new" | "early";
      readonly recipient: string;
      readonly retryAt: Date;
    }
  /** The store failed and onStoreError let the mail through. */
  | { readonly outcome: "unchecked"; readonly reason: "store-error"; readonly detail: string };

/** The transaction's greylisting decisions (on `transaction.results`), in order. */
export const greylistResult: ResultKey<readonly GreylistCheck[]> = resultKey<readonly GreylistCheck[]>("greylist");

/** Set by this plugin's first data handler: a recipient added after it came from a data hook, not a client. */
const dataBegun = resultKey<true>("greylist:data-begun");

const pluginName = "@postern/greylist";
/** While the store keeps failing, a warning at most this often (with how many checks it let through). */
const outageLogEveryMs = 60_000;

export interface GreylistPlugin extends Plugin {
  /** Resolves unless the store does not answer while `onStoreError` is "defer" (what /readyz asks). */
  ready(): Promise<void>;
}

export default function greylist(options: GreylistOptions = {}): GreylistPlugin {
  const resolved = parseOptions(greylistOptionsSchema, options, pluginName);
  const store: GreylistStore =
    resolved.store ??
    (resolved.redis === undefined
      ? memoryStore()
      : redisStore(typeof resolved.redis === "string" ? { url: resolved.redis } : resolved.redis));
  const timings: GreylistTimings = {
    delayMs: resolved.delay,
    retryWindowMs: resolved.retryWindow,
    passedForMs: resolved.passedFor,
    autoAllowAfter: resolved.autoAllowAfter,
  };
  const clock = resolved.clock;
  let resolve: (name: string, rrtype: "A" | "AAAA") => Promise<unknown> = () => Promise.resolve([]);
  const outage = { since: undefined as number | undefined, lastLog: 0, unchecked: 0 };

  const record = (transaction: Transaction, check: GreylistCheck) =>
    transaction.results.set(greylistResult, [...(transaction.results.get(greylistResult) ?? []), check]);

  /** Why this session is not greylisted at all, or undefined. */
  const exemption = async (session: Session, sender: string): Promise<GreylistCheck | undefined> => {
    if (session.listener === localListener) return { outcome: "skipped", reason: "local" };
    if (session.user !== undefined) return { outcome: "skipped", reason: "authenticated" };
    const address = parseIpAddress(session.remoteAddress);
    if (!address) return { outcome: "skipped", reason: "no-address" };
    if (resolved.allow.networks.contains(address)) return { outcome: "skipped", reason: "network" };
    if (senderDomainAllowed(resolved.allow, sender)) return { outcome: "skipped", reason: "senderDomain" };
    if (await clientNameAllowed(resolved.allow, session.clientHostname, address, resolve)) {
      return { outcome: "skipped", reason: "clientName" };
    }
    return undefined;
  };

  /** Asks the store; a failure follows onStoreError (undefined: let it through). */
  const decide = async (
    transaction: Transaction,
    recipient: string,
    log: Logger,
  ): Promise<GreylistDecision | "store-error"> => {
    const address = parseIpAddress(transaction.session.remoteAddress)!;
    const network = clientNetwork(address, resolved.network);
    const now = clock();
    try {
      const decision = await store.check(
        { triplet: tripletKey(network, transaction.mailFrom.address, recipient), network, now },
        timings,
      );
      if (outage.since !== undefined) {
        log.info(
          { store: store.kind, unchecked: outage.unchecked },
          `greylist: the ${store.kind} store at ${store.where} answers again; ${outage.unchecked} checks were skipped meanwhile`,
        );
        outage.since = undefined;
        outage.unchecked = 0;
      }
      if (decision.kind === "pass" && decision.why === "retried" && decision.networkPasses === timings.autoAllowAfter) {
        log.info({ network }, `greylist: ${network} passed ${decision.networkPasses} triplets and is allowlisted`);
      }
      return decision;
    } catch (error) {
      outage.since ??= now;
      outage.unchecked++;
      const nowMs = Date.now();
      if (nowMs - outage.lastLog >= outageLogEveryMs || outage.unchecked === 1) {
        outage.lastLog = nowMs;
        const said =
          resolved.onStoreError === "accept" ? "mail passes without greylisting" : "mail is deferred (451 4.7.1)";
        log.warn(
          {
            err: error,
            code: (error as { code?: string }).code,
            policy: resolved.onStoreError,
            unchecked: outage.unchecked,
          },
          `greylist: ${(error as Error).message}; ${said} until it answers`,
        );
      }
      return "store-error";
    }
  };

  const storeFailed = (transaction: Transaction): Verdict | undefined => {
    if (resolved.onStoreError === "defer") return defer("4.7.1", "Greylisting unavailable, try again later", 451);
    record(transaction, { outcome: "unchecked", reason: "store-error", detail: `the ${store.kind} store failed` });
    return undefined;
  };

  const deferral = (retryAt: number): Verdict => {
    const wait = retryAt - clock();
    const when = new Date(retryAt).toISOString().replace(/\.\d+Z$/, "Z");
    return defer("4.7.1", `Greylisted, please try again in ${humanDuration(wait)} (after ${when})`, 451);
  };

  const checkRecipient = async (
    transaction: Transaction,
    recipient: string,
    log: Logger,
  ): Promise<{ verdict: Verdict | undefined; retryAt?: number }> => {
    const decision = await decide(transaction, recipient, log);
    if (decision === "store-error") return { verdict: storeFailed(transaction) };
    if (decision.kind === "pass") {
      record(transaction, { outcome: "passed", reason: decision.why, recipient });
      return { verdict: undefined };
    }
    record(transaction, { outcome: "deferred", reason: decision.why, recipient, retryAt: new Date(decision.retryAt) });
    return { verdict: deferral(decision.retryAt), retryAt: decision.retryAt };
  };

  const markData = (transaction: Transaction) => {
    transaction.results.set(dataBegun, true);
    return undefined;
  };

  const hooks: Plugin["hooks"] =
    resolved.stage === "rcpt"
      ? {
          // Before the plugins that claim recipients: the first accepting plugin ends the hook.
          rcptTo: {
            order: "pre",
            async handler(transaction, recipient, { log }) {
              // A recipient a data hook adds (a milter's add_rcpt) has no client to retry.
              if (transaction.results.has(dataBegun)) return undefined;
              const exempt = await exemption(transaction.session, transaction.mailFrom.address);
              if (exempt) {
                if (!transaction.results.get(greylistResult)?.some((check) => check.outcome === "skipped")) {
                  record(transaction, exempt);
                }
                return undefined;
              }
              return (await checkRecipient(transaction, recipient.address, log)).verdict;
            },
          },
          data: { order: "pre", handler: markData },
        }
      : {
          data: {
            async handler(transaction, _message, { log }) {
              markData(transaction);
              const exempt = await exemption(transaction.session, transaction.mailFrom.address);
              if (exempt) {
                record(transaction, exempt);
                return undefined;
              }
              // Every triplet is recorded, so one retry passes them all; the latest retry time is the answer.
              let latest: number | undefined;
              for (const recipient of new Set(transaction.recipients.map((entry) => entry.original))) {
                const checked = await checkRecipient(transaction, recipient, log);
                if (checked.verdict && checked.retryAt === undefined) return checked.verdict;
                if (checked.retryAt !== undefined) latest = Math.max(latest ?? 0, checked.retryAt);
              }
              return latest === undefined ? undefined : deferral(latest);
            },
          },
        };

  return {
    name: pluginName,
    async setup(server) {
      resolve = (name, rrtype) => server.resolver.resolve(name, rrtype);
      await store.open?.(server.logger.child({ plugin: pluginName }));
    },
    // With "accept" (the default) an unanswering store only skips greylisting: mail flows, ready.
    async ready() {
      if (resolved.onStoreError === "defer") await store.ping?.();
    },
    async close() {
      await store.close?.();
    },
    hooks,
  } satisfies GreylistPlugin;
}
