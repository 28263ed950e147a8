// End of DATA: spool the message, apply the trust boundary (loop limit, forged
// Authentication-Results), write the Received field, run the data hooks (which may rewrite it),
// then have every route group stored before answering 250. Nothing is acknowledged that no
// storage plugin made durable.
import type { Logger } from "pino";
import { removeAuthResultsOf } from "./auth-results.ts";
import type { ServerConfig } from "./config.ts";
import { spoolRefused, type TransactionOutcome, transactionEnded } from "./core-events.ts";
import type { EventChannel } from "./events.ts";
import type { HookRunner } from "./hook-runner.ts";
import type { Hooks } from "./hooks.ts";
import type { SpooledMessage } from "./message.ts";
import { receivedHeader } from "./received.ts";
import { coreReplies, queued, replyError, replyFor, type SmtpReply } from "./reply.ts";
import { RouteMemory, storedKey, type TransactionEnvelope, transactionFingerprint } from "./route-memory.ts";
import type { Recipient, RouteGroup } from "./session.ts";
import type { SessionState, TransactionState } from "./session-state.ts";
import { type SpoolOutcome, type SpoolProblem, spoolMessage } from "./spool.ts";

const spoolReplies: Record<SpoolProblem, SmtpReply> = {
  size: coreReplies.tooBig,
  "bare-newline": coreReplies.bareNewline,
  "line-length": coreReplies.lineTooLong,
  nul: coreReplies.nulByte,
};

export function groupByRoute(recipients: readonly Recipient[]): RouteGroup[] {
  // Usually every recipient has the same route: one group, no map.
  const route = recipients[0]?.route;
  if (route !== undefined && recipients.every((recipient) => recipient.route === route)) {
    return [{ route, recipients: [...recipients] }];
  }
  const groups = new Map<string, Recipient[]>();
  for (const recipient of recipients) {
    const group = groups.get(recipient.route) ?? [];
    group.push(recipient);
    groups.set(recipient.route, group);
  }
  return [...groups].map(([route, members]) => ({ route, recipients: members }));
}

const storageErrors = new Set(["ENOSPC", "EDQUOT", "EROFS"]);

/** Header lines named `name` in a raw header block: cheaper than parsing it, for every message. */
function countFieldLines(block: string, name: RegExp): number {
  return block.match(name)?.length ?? 0;
}
const receivedLine = /^received[ \t]*:/gim;
const authResultsLine = /^authentication-results[ \t]*:/im;

export interface MessagePathDependencies {
  readonly config: ServerConfig;
  readonly authservId: string;
  readonly hooks: HookRunner<Hooks>;
  readonly events: EventChannel;
  readonly logger: Logger;
  /** Reports a refusal (log line and observers). */
  readonly refused: (
    session: SessionState,
    stage: "data" | "queue",
    plugin: string | undefined,
    reply: SmtpReply,
  ) => void;
  /** Closes the connection after the reply when the reply says so. */
  readonly closeAfterReply: (session: SessionState, reply: SmtpReply) => void;
  /**
   * What partly stored transactions had stored (route-memory.ts); one of its own from
   * `config.limits.routeMemory` when not given (pass one to keep it across generations).
   */
  readonly routeMemory?: RouteMemory | undefined;
}

/** The recipients of `groups` already stored (`stored`), as route groups, and what is left to store. */
function splitStored(
  groups: readonly RouteGroup[],
  stored: ReadonlySet<string>,
): { alreadyStored: RouteGroup[]; pending: RouteGroup[] } {
  const alreadyStored: RouteGroup[] = [];
  const pending: RouteGroup[] = [];
  for (const { route, recipients } of groups) {
    const done = recipients.filter((recipient) => stored.has(storedKey(route, recipient.address)));
    if (done.length > 0) alreadyStored.push({ route, recipients: done });
    if (done.length === recipients.length) continue;
    pending.push(
      done.length === 0 ? { route, recipients } : { route, recipients: recipients.filter((r) => !done.includes(r)) },
    );
  }
  return { alreadyStored, pending };
}

/** Thrown out of receive(): smtp-server sends `responseCode` and the message as the reply. */
type ReplyError = ReturnType<typeof replyError>;

export function createMessagePath(dependencies: MessagePathDependencies) {
  const { config, hooks, events, logger, refused, closeAfterReply, authservId } = dependencies;
  const routeMemory =
    dependencies.routeMemory ??
    (config.limits.routeMemory.maxEntries > 0 ? new RouteMemory(config.limits.routeMemory) : undefined);
  const bindings = (transaction: TransactionState) => ({ session: transaction.session.id, queueId: transaction.id });

  const ended = (
    transaction: TransactionState,
    outcome: TransactionOutcome,
    reply: SmtpReply | undefined,
    message: SpooledMessage | undefined,
    groups: readonly RouteGroup[] = [],
    reason?: string,
    alreadyStored?: readonly RouteGroup[],
  ) => {
    transaction.ended = true;
    if (!events.observed(transactionEnded)) return;
    events.emit(transactionEnded, {
      transaction,
      outcome,
      reply,
      size: message?.receivedSize,
      groups,
      recipients: transaction.recipients,
      reason,
      ...(alreadyStored && alreadyStored.length > 0 ? { alreadyStored } : {}),
      durationMs: performance.now() - transaction.startedAt,
    });
  };

  /** Refuses with `reply` (closing when it says so) and reports the transaction refused. */
  const refuse = (
    transaction: TransactionState,
    stage: "data" | "queue",
    plugin: string | undefined,
    reply: SmtpReply,
    message: SpooledMessage | undefined,
    alreadyStored?: readonly RouteGroup[],
  ): ReplyError => {
    refused(transaction.session, stage, plugin, reply);
    closeAfterReply(transaction.session, reply);
    ended(transaction, "refused", reply, message, [], undefined, alreadyStored);
    return replyError(reply);
  };

  /**
   * What an earlier attempt of this transaction stored, when one is remembered. Hashes the message
   * only when a remembered transaction has its sender and size.
   */
  const recallStored = async (
    transaction: TransactionState,
    message: SpooledMessage,
    envelope: TransactionEnvelope,
  ): Promise<{ fingerprint: string; stored: ReadonlySet<string> } | undefined> => {
    if (!routeMemory || routeMemory.size === 0) return undefined; // the usual case: nothing to build
    if (!routeMemory.mightHave(RouteMemory.candidateKey(envelope.sender, message.receivedSize))) return undefined;
    try {
      const fingerprint = await transactionFingerprint(envelope, message.original());
      const stored = routeMemory.recall(fingerprint);
      return stored ? { fingerprint, stored } : undefined;
    } catch (error) {
      // Unread, the message is stored for every group: a duplicate at worst, never a loss.
      logger.warn({ ...bindings(transaction), err: error }, "route memory: could not fingerprint the message");
      return undefined;
    }
  };

  /** Remembers the recipients stored so far, so the client's retry stores only the rest. */
  const rememberStored = async (
    transaction: TransactionState,
    message: SpooledMessage,
    envelope: TransactionEnvelope,
    retry: { fingerprint: string } | undefined,
    storedGroups: readonly RouteGroup[],
  ): Promise<void> => {
    if (!routeMemory) return;
    try {
      const fingerprint = retry?.fingerprint ?? (await transactionFingerprint(envelope, message.original()));
      const stored = new Set<string>();
      for (const { route, recipients } of storedGroups) {
        for (const recipient of recipients) stored.add(storedKey(route, recipient.address));
      }
      const candidate = RouteMemory.candidateKey(envelope.sender, message.receivedSize);
      if (!routeMemory.remember(fingerprint, candidate, stored)) {
        logger.warn(
          { ...bindings(transaction), recipients: stored.size },
          "route memory: more recipients stored than limits.routeMemory.maxEntries, the retry stores them again",
        );
      }
    } catch (error) {
      logger.warn({ ...bindings(transaction), err: error }, "route memory: could not fingerprint the message");
    }
  };

  /** Runs after the spool: every step that can refuse the message, then storage. */
  const process = async (
    transaction: TransactionState,
    message: SpooledMessage,
    stages: { dataHooks: boolean } = { dataHooks: true },
  ): Promise<string> => {
    const session = transaction.session;
    // The trust boundary, before any plugin sees the message.
    const rawHeader = message.rawHeaderText();
    if (countFieldLines(rawHeader, receivedLine) > config.limits.maxReceived) {
      throw refuse(transaction, "data", undefined, coreReplies.tooManyHops, message);
    }
    if (authResultsLine.test(rawHeader)) {
      const removed = removeAuthResultsOf(message, authservId);
      if (removed > 0) {
        logger.info({ session: session.id, queueId: transaction.id, removed }, "removed forged Authentication-Results");
      }
    }
    message.prepend("Received", receivedHeader(config.hostname, transaction));
    // The client's transaction, before data hooks change it: what a retry of it will have again.
    const envelope: TransactionEnvelope | undefined = routeMemory && {
      sender: transaction.mailFrom.address,
      recipients: transaction.recipients.slice(),
    };

    const data = stages.dataHooks
      ? await hooks.first("data", [transaction, message], bindings(transaction))
      : { result: undefined, plugin: undefined };
    const verdict = data.result;
    if (verdict && verdict.kind !== "accept" && verdict.kind !== "discard") {
      throw refuse(transaction, "data", data.plugin, replyFor(verdict), message);
    }
    // A data hook that removed every recipient discarded the message, as with a milter.
    const discarded =
      verdict?.kind === "discard"
        ? verdict.reason
        : transaction.recipients.length === 0
          ? "every recipient was removed"
          : undefined;
    if (discarded !== undefined) {
      logger.info(
        { session: session.id, queueId: transaction.id, plugin: data.plugin, reason: discarded },
        "discarded",
      );
      session.transactionCount++;
      const reply = { code: 250, message: queued(transaction.id), close: false };
      ended(transaction, "discarded", reply, message, [], discarded);
      return reply.message;
    }

    // Every route group must be stored by a plugin that made it durable before we say 250.
    transaction.queueing = true;
    const groups = transaction.quarantined
      ? [{ route: config.quarantineRoute, recipients: transaction.recipients }]
      : groupByRoute(transaction.recipients);
    const retry = envelope ? await recallStored(transaction, message, envelope) : undefined;
    const { alreadyStored, pending } = retry
      ? splitStored(groups, retry.stored)
      : { alreadyStored: [], pending: groups };
    if (alreadyStored.length > 0) {
      logger.info(
        {
          session: session.id,
          queueId: transaction.id,
          alreadyStored: alreadyStored.map(({ route, recipients }) => ({ route, recipients: recipients.length })),
        },
        "retry: route groups stored by an earlier attempt are not stored again",
      );
    }
    const storedNow: RouteGroup[] = [];
    for (const group of pending) {
      const stored = await hooks.first("queue", [transaction, message, group], bindings(transaction));
      const answer = stored.result;
      if (answer?.kind !== "accept") {
        const reply = answer ? replyFor(answer) : coreReplies.notStored;
        // Only a 4xx is retried: a client bounces every recipient of a 5xx, stored or not.
        if (envelope && reply.code < 500 && (storedNow.length > 0 || retry)) {
          await rememberStored(transaction, message, envelope, retry, [...alreadyStored, ...storedNow]);
        }
        throw refuse(transaction, "queue", stored.plugin, reply, message, alreadyStored);
      }
      storedNow.push(group);
    }
    if (retry) routeMemory?.forget(retry.fingerprint);
    session.transactionCount++;
    // The line's fields are built only when the line is written (servers often log at warn).
    if (logger.isLevelEnabled("info")) {
      logger.info(
        {
          session: session.id,
          queueId: transaction.id,
          from: transaction.mailFrom.address,
          recipients: transaction.recipients.length,
          size: message.receivedSize,
          ...(transaction.quarantined ? { quarantined: transaction.quarantined.reason } : {}),
        },
        "queued",
      );
    }
    const text = queued(transaction.id);
    // Every group is stored now, some by an earlier attempt: observers see the transaction queued
    // once, whole (outbound's "delivered" reports for the skipped groups go out here).
    ended(transaction, "queued", { code: 250, message: text, close: false }, message, groups, undefined, alreadyStored);
    return text;
  };

  return {
    process,
    /** Receives DATA for the session's transaction; resolves with the 250 text or throws the reply. */
    async receive(
      stream: NodeJS.ReadableStream,
      session: SessionState,
      transaction: TransactionState,
      progress?: { received: number },
    ) {
      let spooled: SpoolOutcome | undefined;
      try {
        spooled = await spoolMessage(stream as never, {
          progress,
          maxSize: config.limits.maxMessageSize,
          memoryThreshold: config.limits.memoryThreshold,
          spoolDir: config.spoolDir,
          bareNewlines: config.limits.bareNewlines,
          maxLineLength: config.limits.maxLineLength,
        });
        if (!spooled.ok) {
          const reply = spoolReplies[spooled.problem];
          if (events.observed(spoolRefused)) {
            events.emit(spoolRefused, { session, transaction, problem: spooled.problem, size: spooled.size });
          }
          throw refuse(transaction, "data", undefined, reply, undefined);
        }
        return await process(transaction, spooled.message);
      } catch (error) {
        if ((error as Partial<ReplyError>).responseCode) throw error;
        // The spool's disk is full or read-only: say so (RFC 3463 4.3.1), it is the operator's to fix.
        if (storageErrors.has(String((error as NodeJS.ErrnoException).code))) {
          logger.error({ session: session.id, queueId: transaction.id, err: error }, "spool storage unavailable");
          if (!transaction.ended) ended(transaction, "refused", coreReplies.storageFull, undefined);
          throw replyError(coreReplies.storageFull);
        }
        // Not a reply: the client went away mid-DATA, or a bug. Never an acknowledgement.
        logger.error({ session: session.id, queueId: transaction.id, err: error }, "DATA failed");
        if (!transaction.ended) ended(transaction, "refused", coreReplies.hookFailed, undefined);
        throw replyError(coreReplies.hookFailed);
      } finally {
        await spooled?.discard();
      }
    },
  };
}
