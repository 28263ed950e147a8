// @postern/rate-limit — connection, message and recipient limits, counted in memory or shared by
// every node through Redis.
//
// Every hook runs "pre" so it counts before other plugins decide (a recipient plugin's accept
// would otherwise end the rcptTo chain first) and returns nothing when within limits. Counter
// calls of one hook run together under one deadline shorter than the hook's, so a slow or dead
// Redis answers per `onError` instead of hanging the session.
import {
  authAttempted,
  type HookContext,
  type IpAddress,
  type Logger,
  type Message,
  networkContains,
  type Plugin,
  parseIpAddress,
  parseOptions,
  resultKey,
  type Session,
  sessionClosed,
  type Transaction,
  type Verdict,
} from "@postern/core";
import type { Backend, ConnectionGauge, WindowCounter } from "./backend.ts";
import { rememberOptions } from "./counters.ts";
import { memoryBackend } from "./memory-backend.ts";
import { type LimitKind, type RateLimitOptions, type ResolvedRule, rateLimitOptionsSchema } from "./options.ts";
import { redisBackend } from "./redis-backend.ts";
import { refusal, type Stage, storeUnavailable } from "./replies.ts";
import { countsByRecipient, type KeyFacts, keysFor } from "./rule-keys.ts";
import { outageReporter, storeError, tarpit, withDeadline } from "./store-errors.ts";

export type { CounterState, RateLimitCounters } from "./counters.ts";
export { RateLimitKeyError, rateLimitCounters } from "./counters.ts";
export type { KeyName, LimitKind, LimitRule, RateLimitOptions, RedisOptions } from "./options.ts";
export { rateLimitOptionsSchema } from "./options.ts";
export type { RateLimitErrorCode } from "./store-errors.ts";
export { RateLimitStoreError } from "./store-errors.ts";

const pluginName = "@postern/rate-limit";

/** The limit that refused something in this session (the latest), for logs and other plugins. */
export interface RateLimitHit {
  /** The rule's name ("messages-ip-3600s" or the name given). */
  limit: string;
  kind: LimitKind;
  /** The counter key that was over its limit ("ip=192.0.2.1"). */
  key: string;
}

export const rateLimitHit = resultKey<RateLimitHit>("rate-limit");

interface SessionLimits {
  readonly client: IpAddress | undefined;
  /** The client is in allow.networks. */
  readonly allowedNetwork: boolean;
  /** Concurrent-connection slots this session holds. */
  readonly slots: { gauge: ConnectionGauge; key: string }[];
  /** Set by the close hook; a slot granted after it is given back at once. */
  closed: boolean;
  /** AUTH failure counts of the last attempt, taken back if it turns out to have succeeded. */
  authAttempt: { counter: WindowCounter; key: string }[] | undefined;
}

interface Check {
  rule: ResolvedRule;
  key: string;
  /** Resolves true when within the limit. */
  run(): Promise<boolean>;
}

interface Limit {
  rule: ResolvedRule;
  counter: WindowCounter | undefined;
  gauge: ConnectionGauge | undefined;
}

export interface RateLimitPlugin extends Plugin {
  /** Resolves unless Redis does not answer while `onError` is "defer" (what /readyz asks). */
  ready(): Promise<void>;
}

export default function rateLimit(options: RateLimitOptions): RateLimitPlugin {
  const resolved = parseOptions(rateLimitOptionsSchema, options, pluginName);
  const backend: Backend = resolved.redis ? redisBackend(resolved.redis) : memoryBackend();
  const storeTimeoutMs = resolved.redis?.timeoutMs ?? 1000;
  const onError = resolved.redis?.onError ?? "defer";
  const limits: Limit[] = resolved.rules.map((rule) => ({
    rule,
    counter: rule.kind === "concurrent" || rule.kind === "recipientsPerMessage" ? undefined : backend.counter(rule),
    gauge: rule.kind === "concurrent" ? backend.gauge(rule) : undefined,
  }));
  const ofKind = (kind: LimitKind, filter: (rule: ResolvedRule) => boolean = () => true) =>
    limits.filter((limit) => limit.rule.kind === kind && filter(limit.rule));
  const longestTarpitMs = Math.max(0, ...resolved.rules.map((rule) => rule.tarpitMs));
  // Our own bound (store deadline + tarpit) always comes first, so core never has to time us out.
  const hookTimeoutMs = storeTimeoutMs + longestTarpitMs + 2000;

  const sessions = new WeakMap<Session, SessionLimits>();
  /** Per transaction: counter keys of per-recipient message limits already counted, and whether they passed. */
  const messageCounts = new WeakMap<Transaction, Map<string, boolean>>();
  /** Store calls still running (releases after a session ended, late answers): close() waits for them. */
  const inFlight = new Set<Promise<unknown>>();
  /** Sessions holding slots, so that shutdown can give them back even if a close hook has not run yet. */
  const holding = new Set<SessionLimits>();
  let stopped = false;
  const reportOutage = outageReporter();
  let serverLog: Logger | undefined;

  const background = <T>(work: Promise<T>): Promise<T> => {
    const tracked = work.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    tracked.catch(() => undefined);
    return tracked;
  };

  /** Store calls within the deadline; in-memory counters answer at once and need no timer. */
  const bounded = <T>(work: Promise<T>): Promise<T> =>
    backend.kind === "memory" ? work : withDeadline(work, storeTimeoutMs);

  const stateOf = (session: Session): SessionLimits => {
    let state = sessions.get(session);
    if (!state) {
      const client = parseIpAddress(session.remoteAddress);
      state = {
        client,
        allowedNetwork:
          client !== undefined && resolved.allowNetworks.some((network) => networkContains(network, client)),
        slots: [],
        closed: false,
        authAttempt: undefined,
      };
      sessions.set(session, state);
    }
    return state;
  };

  const exempt = (session: Session, state: SessionLimits) =>
    state.allowedNetwork || (session.user !== undefined && resolved.allowUsers.has(session.user));

  const facts = (session: Session, state: SessionLimits, extra: Partial<KeyFacts> = {}): KeyFacts => ({
    session,
    client: state.client,
    prefixes: resolved.prefixes,
    user: session.user,
    ...extra,
  });

  /**
   * AUTH attempts are counted as failures up front (the auth hook must refuse a client already
   * over its limit); the observer takes the count back for an attempt that succeeded.
   */
  const settleAuth = (session: Session, accepted: boolean) => {
    const state = sessions.get(session);
    const attempt = state?.authAttempt;
    if (!state || !attempt) return;
    state.authAttempt = undefined;
    if (accepted) for (const { counter, key } of attempt) background(counter.reward(key, 1));
  };

  const takeSlot = async (state: SessionLimits, gauge: ConnectionGauge, key: string): Promise<boolean> => {
    const taken = await background(gauge.acquire(key));
    if (taken) {
      // The session may have ended while the store answered (or after the hook's deadline).
      if (state.closed || stopped) background(gauge.release(key));
      else {
        state.slots.push({ gauge, key });
        holding.add(state);
      }
    }
    return taken;
  };

  /** Runs the checks under one deadline; a refusal (after any tarpit), a store-failure reply, or nothing. */
  const decide = async (
    stage: Stage,
    session: Session,
    checks: Check[],
    context: HookContext,
  ): Promise<Verdict | undefined> => {
    if (checks.length === 0) return undefined;
    let passed: boolean[];
    try {
      passed = await bounded(Promise.all(checks.map((check) => background(check.run()))));
    } catch (cause) {
      const error = storeError(cause);
      reportOutage(context.log, error, { stage, backend: backend.kind, onError });
      return onError === "allow" ? undefined : storeUnavailable(stage);
    }
    const refused = checks.filter((_, index) => !passed[index]);
    const first = refused[0];
    if (!first) return undefined;
    session.results.set(rateLimitHit, { limit: first.rule.name, kind: first.rule.kind, key: first.key });
    context.log.info({ limit: first.rule.name, kind: first.rule.kind, key: first.key }, "rate limit reached");
    await tarpit(Math.max(...refused.map((check) => check.rule.tarpitMs)), context.signal);
    return refusal(first.rule.kind);
  };

  /** One check per counter key of each limit. */
  const countChecks = (of: Limit[], keyFacts: KeyFacts, points: number): Check[] =>
    of.flatMap(({ rule, counter }) =>
      keysFor(rule, keyFacts).map((key) => ({ rule, key, run: () => counter!.consume(key, points) })),
    );

  const connect = async (session: Session, context: HookContext) => {
    const state = stateOf(session);
    if (state.allowedNetwork) return undefined;
    const keyFacts = facts(session, state);
    const checks: Check[] = [
      ...ofKind("concurrent").flatMap(({ rule, gauge }) =>
        keysFor(rule, keyFacts).map((key) => ({ rule, key, run: () => takeSlot(state, gauge!, key) })),
      ),
      ...countChecks(ofKind("connections"), keyFacts, 1),
    ];
    return decide("connect", session, checks, context);
  };

  const auth = async (session: Session, username: string, context: HookContext) => {
    const state = stateOf(session);
    if (state.allowedNetwork) return undefined;
    const checks = countChecks(ofKind("authFailures"), facts(session, state, { user: username }), 1);
    const verdict = await decide("auth", session, checks, context);
    if (!verdict) {
      state.authAttempt = checks.map((check) => ({
        counter: limits.find((limit) => limit.rule === check.rule)!.counter!,
        key: check.key,
      }));
    }
    return verdict;
  };

  const mailFrom = async (transaction: Transaction, sender: string, context: HookContext) => {
    const session = transaction.session;
    const state = stateOf(session);
    if (exempt(session, state)) return undefined;
    const keyFacts = facts(session, state, { sender });
    const checks = countChecks(
      ofKind("messages", (rule) => !countsByRecipient(rule)),
      keyFacts,
      1,
    );
    return decide("mailFrom", session, checks, context);
  };

  const rcptTo = async (transaction: Transaction, recipient: string, context: HookContext) => {
    const session = transaction.session;
    const state = stateOf(session);
    if (exempt(session, state)) return undefined;
    const keyFacts = facts(session, state, { sender: transaction.mailFrom.address, recipients: [recipient] });
    // Recipients per message need no store: count the accepted recipients sharing this one's key.
    const perMessage: Check[] = ofKind("recipientsPerMessage").flatMap(({ rule }) =>
      keysFor(rule, keyFacts).map((key) => ({
        rule,
        key,
        run: async () => {
          const sharing = transaction.recipients.filter((accepted) =>
            keysFor(rule, { ...keyFacts, recipients: [accepted.address] }).includes(key),
          ).length;
          return sharing < rule.count;
        },
      })),
    );
    const tooMany = await decide("rcptTo", session, perMessage, context);
    if (tooMany) return tooMany;
    let counted = messageCounts.get(transaction);
    if (!counted) {
      counted = new Map();
      messageCounts.set(transaction, counted);
    }
    const seen = counted;
    const perRecipientMessages: Check[] = ofKind("messages", countsByRecipient).flatMap(({ rule, counter }) =>
      keysFor(rule, keyFacts).map((key) => ({
        rule,
        key,
        // A message counts once per recipient key (per domain, say), however many recipients share it.
        run: async () => {
          const id = `${rule.name}\n${key}`;
          const known = seen.get(id);
          if (known !== undefined) return known;
          const passed = await counter!.consume(key, 1);
          seen.set(id, passed);
          return passed;
        },
      })),
    );
    return decide(
      "rcptTo",
      session,
      [...countChecks(ofKind("recipients"), keyFacts, 1), ...perRecipientMessages],
      context,
    );
  };

  const data = async (transaction: Transaction, message: Message, context: HookContext) => {
    const session = transaction.session;
    const state = stateOf(session);
    if (exempt(session, state)) return undefined;
    const keyFacts = facts(session, state, {
      sender: transaction.mailFrom.address,
      recipients: transaction.recipients.map((recipient) => recipient.address),
    });
    const checks: Check[] = ofKind("bytes").flatMap(({ rule, counter }) =>
      keysFor(rule, keyFacts).map((key) => ({
        rule,
        key,
        run: async () => {
          const passed = await counter!.consume(key, message.size);
          // A refused message does not use up the allowance left for smaller ones.
          if (!passed) background(counter!.reward(key, message.size));
          return passed;
        },
      })),
    );
    return decide("data", session, checks, context);
  };

  /** The session ended: its concurrent-connection slots go back (an observer: it decides nothing). */
  const sessionEnded = async (session: Session) => {
    const state = sessions.get(session);
    if (!state) return;
    state.authAttempt = undefined;
    state.closed = true;
    holding.delete(state);
    const slots = state.slots.splice(0);
    if (slots.length === 0) return;
    try {
      await bounded(Promise.all(slots.map(({ gauge, key }) => background(gauge.release(key)))));
    } catch (cause) {
      // The Redis backend writes this node's exact counts back once Redis answers again.
      reportOutage(serverLog!, storeError(cause), { stage: "close", backend: backend.kind });
    }
  };

  const pre = <Handler>(handler: Handler) => ({ handler, order: "pre" as const, timeoutMs: hookTimeoutMs });

  const plugin = {
    name: pluginName,
    async setup(server) {
      serverLog = server.logger.child({ plugin: pluginName });
      // Watching is not deciding: these run after the fact, on the observer channel.
      server.events.on(authAttempted, ({ session, outcome }) => settleAuth(session, outcome === "accepted"));
      server.events.on(sessionClosed, ({ session }) => sessionEnded(session));
      await backend.open(serverLog);
    },
    /**
     * For /readyz of @postern/metrics: not ready while Redis does not answer and `onError` is
     * "defer" (every limited session is then answered 4xx). With "allow" mail flows without it.
     */
    async ready() {
      if (onError === "defer") await backend.ping();
    },
    async close() {
      stopped = true;
      // Core closed every connection before this; give back slots whose close hook has not run yet.
      for (const state of holding) {
        state.closed = true;
        for (const { gauge, key } of state.slots.splice(0)) background(gauge.release(key));
      }
      holding.clear();
      // Releases of the sessions that shutdown just ended may still be on their way to the store.
      await withDeadline(Promise.allSettled([...inFlight]), storeTimeoutMs * 2).catch(() => undefined);
      await backend.close();
    },
    hooks: {
      connect: pre((session: Session, context: HookContext) => connect(session, context)),
      auth: pre((session: Session, credentials: { username: string }, context: HookContext) =>
        auth(session, credentials.username, context),
      ),
      mailFrom: pre((transaction: Transaction, address: { address: string }, context: HookContext) =>
        mailFrom(transaction, address.address, context),
      ),
      rcptTo: pre((transaction: Transaction, recipient: { address: string }, context: HookContext) =>
        rcptTo(transaction, recipient.address, context),
      ),
      data: pre((transaction: Transaction, message: Message, context: HookContext) =>
        data(transaction, message, context),
      ),
    },
  } satisfies RateLimitPlugin;
  rememberOptions(plugin, resolved);
  return plugin;
}
