// smtp-server's callbacks, each running its SMTP hook and turning the answer into a reply. The
// defaults and failure answers come from the hook table (hooks.ts); the replies from reply.ts.
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerDataStream,
  SMTPServerOptions,
  SMTPServerSession,
} from "smtp-server";
import { parseAddress } from "./address.ts";
import type { ServerConfig } from "./config.ts";
import {
  authAttempted,
  commandRefused,
  type SmtpStage,
  sessionClosed,
  sessionOpened,
  tlsEstablished,
  transactionEnded,
} from "./core-events.ts";
import type { EventChannel } from "./events.ts";
import type { HookRunner } from "./hook-runner.ts";
import type { Hooks } from "./hooks.ts";
import { createMessagePath } from "./message-path.ts";
import { coreReplies, replyError, replyFor, type SmtpReply } from "./reply.ts";
import type { AddRecipientOutcome, Address, ListenerInfo } from "./session.ts";
import { SessionClock, type SessionRules } from "./session-clock.ts";
import { SessionState, TransactionState } from "./session-state.ts";
import type { ConnectionAdapter, SMTPConnection } from "./smtp-adapter.ts";
import { clientCertificateOf } from "./tls-context.ts";
import type { Expansion, Verdict } from "./verdict.ts";

export interface ProtocolDependencies {
  readonly config: ServerConfig;
  readonly authservId: string;
  readonly hooks: HookRunner<Hooks>;
  readonly events: EventChannel;
  readonly logger: Logger;
  /** Sessions by id (shutdown walks them). */
  readonly sessions: Map<string, SessionState>;
  /** Sessions between the end of DATA and the reply: shutdown waits for these. */
  readonly inFlight: Set<string>;
  /** close hooks still running; shutdown waits for them before closing plugins. */
  readonly closing: Set<Promise<void>>;
  /** True once shutdown began. */
  readonly stopping: () => boolean;
}

/** ESMTP parameters the server implements (RFC 1870, 6152, 6531, 8689, 3461, 4954); any other is 555. */
const mailParameters = new Set(["SIZE", "BODY", "SMTPUTF8", "REQUIRETLS", "RET", "ENVID", "AUTH"]);
const rcptParameters = new Set(["NOTIFY", "ORCPT"]);
// biome-ignore lint/suspicious/noControlCharactersInRegex: the test is "anything beyond ASCII"
const nonAscii = /[^\x00-\x7f]/;

/**
 * A non-ASCII local part needs SMTPUTF8 (RFC 6531 §3.4). Only the local part can tell: smtp-server
 * hands over every domain in Unicode, also one the client sent as ASCII (xn--…) A-labels.
 */
function utf8WithoutSmtputf8(address: string, smtpUtf8: boolean): boolean {
  return !smtpUtf8 && nonAscii.test(address.slice(0, Math.max(0, address.lastIndexOf("@"))));
}

function unknownParameter(address: SMTPServerAddress, known: ReadonlySet<string>): boolean {
  return Object.keys(address.args || {}).some((key) => !known.has(key.toUpperCase()));
}

/** What smtp-server lets through at MAIL FROM that RFC 5321 and 6531 refuse. */
function mailFromProblem(address: SMTPServerAddress): SmtpReply | undefined {
  if (unknownParameter(address, mailParameters)) return coreReplies.unknownParameter;
  const smtpUtf8 = Boolean(address.args && (address.args as Record<string, unknown>).SMTPUTF8);
  if (utf8WithoutSmtputf8(address.address, smtpUtf8)) return coreReplies.utf8NeedsSmtputf8;
  // The null sender is fine; any other sender needs a domain that is one (or an address literal).
  if (address.address !== "" && parseAddress(address.address).kind === "malformed") return coreReplies.badSenderSyntax;
  return undefined;
}

function rcptToProblem(address: SMTPServerAddress, smtpUtf8: boolean): SmtpReply | undefined {
  if (unknownParameter(address, rcptParameters)) return coreReplies.unknownParameter;
  if (utf8WithoutSmtputf8(address.address, smtpUtf8)) return coreReplies.utf8NeedsSmtputf8;
  if (parseAddress(address.address).kind === "malformed") return coreReplies.badRecipientSyntax;
  return undefined;
}

function toAddress(smtp: SMTPServerAddress): Address {
  const parameters: Record<string, string | true> = {};
  for (const [key, value] of Object.entries(smtp.args || {})) parameters[key.toUpperCase()] = value;
  return { address: smtp.address, parameters };
}

type Callback = (error?: Error | null) => void;

export function createProtocol(dependencies: ProtocolDependencies) {
  const { config, hooks, events, logger, sessions, inFlight, closing } = dependencies;

  const refused = (
    session: SessionState,
    stage: SmtpStage,
    plugin: string | undefined,
    reply: SmtpReply,
    address?: string,
  ) => {
    const transaction = session.transaction;
    logger.info(
      { session: session.id, queueId: transaction?.id, hook: stage, plugin, code: reply.code, reply: reply.message },
      "refused",
    );
    if (events.observed(commandRefused)) {
      events.emit(commandRefused, { session, transaction, stage, plugin, reply, ...(address ? { address } : {}) });
    }
  };

  const closeAfterReply = (session: SessionState, reply: SmtpReply | undefined) => {
    if (reply?.close) setImmediate(() => session.connection?.close());
  };

  const stateOf = (smtp: SMTPServerSession): SessionState => {
    const state = sessions.get(smtp.id);
    if (!state) throw new Error(`no session state for ${smtp.id}`);
    return state;
  };

  /** A transaction that ends before DATA's reply (RSET, a new MAIL FROM, STARTTLS, the client left). */
  const abandon = (session: SessionState) => {
    const transaction = session.transaction;
    session.transaction = undefined;
    if (!transaction || transaction.ended) return;
    transaction.ended = true;
    if (!events.observed(transactionEnded)) return;
    events.emit(transactionEnded, {
      transaction,
      outcome: "abandoned",
      reply: undefined,
      size: undefined,
      groups: [],
      recipients: transaction.recipients,
      reason: undefined,
      durationMs: performance.now() - transaction.startedAt,
    });
  };

  /** Runs a verdict hook; the refusal reply (reported), or undefined with the accepting verdict. */
  const decide = async <Name extends Exclude<keyof Hooks, "close" | "data" | "queue">>(
    stage: Name,
    args: Parameters<HookRunner<Hooks>["first"]>[1] & unknown[],
    session: SessionState,
  ): Promise<{ reply: SmtpReply | undefined; verdict: Verdict | undefined; plugin: string | undefined }> => {
    const { result, plugin } = await hooks.first(stage, args as never, {
      session: session.id,
      queueId: session.transaction?.id,
    });
    const verdict = result as Verdict | undefined;
    if (!verdict || verdict.kind === "accept") return { reply: undefined, verdict, plugin };
    const reply = replyFor(verdict);
    if (stage !== "auth") refused(session, stage, plugin, reply);
    return { reply, verdict, plugin };
  };

  /** The rcptTo hooks for one address: refused, or what it resolved to (added, duplicates collapsed). */
  const claim = async (
    transaction: TransactionState,
    candidate: Address,
    dsn?: { notify?: string[]; orcpt?: string },
  ): Promise<AddRecipientOutcome & { reply?: SmtpReply }> => {
    const session = transaction.session;
    const { result, plugin } = await hooks.first("rcptTo", [transaction, candidate], {
      session: session.id,
      queueId: transaction.id,
    });
    const verdict = result!;
    if (verdict.kind !== "accept") {
      const reply = replyFor(verdict);
      refused(session, "rcptTo", plugin, reply, candidate.address);
      return { ok: false, refusal: verdict, plugin, reply };
    }
    const expansion: readonly Expansion[] = verdict.expand ?? [{ address: candidate.address, route: verdict.route! }];
    if (expansion.length > config.limits.maxExpansion) {
      const reply = coreReplies.expansionTooLarge;
      logger.warn(
        { session: session.id, queueId: transaction.id, plugin, address: candidate.address, size: expansion.length },
        "recipient expansion past limits.maxExpansion",
      );
      refused(session, "rcptTo", plugin, reply, candidate.address);
      const refusal = { kind: "reject", status: "5.5.3", code: reply.code, text: reply.message.slice(6) } as const;
      return { ok: false, refusal, plugin, reply };
    }
    return { ok: true, recipients: transaction.addResolved(candidate, dsn, expansion) };
  };

  const messagePath = createMessagePath({
    config,
    authservId: dependencies.authservId,
    hooks,
    events,
    logger,
    refused,
    closeAfterReply,
  });

  const settle = (promise: Promise<SmtpReply | undefined>, session: SessionState, callback: Callback) => {
    promise.then(
      (reply) => {
        if (!reply) return callback();
        closeAfterReply(session, reply);
        callback(replyError(reply));
      },
      (error: Error) => {
        logger.error({ session: session.id, err: error }, "command failed");
        callback(replyError(coreReplies.hookFailed));
      },
    );
  };

  /** Connection-level wiring for the adapter (smtp-adapter.ts). */
  const adapterFor = (info: ListenerInfo): Omit<ConnectionAdapter, "greetingDelayMs" | "authAfterTls"> => ({
    opened(connection: SMTPConnection) {
      // The connection exists before onConnect; keep it so a disconnect verdict can close it.
      const session = new SessionState(connection.session, info);
      session.connection = connection;
      sessions.set(connection.id, session);
    },
    async helo(smtp, name, command) {
      const session = stateOf(smtp);
      const { reply } = await decide("helo", [session, name], session);
      if (!reply) {
        session.heloName = name.toLowerCase();
        session.greeting = command;
        abandon(session);
      }
      return reply;
    },
  });

  const clock = new SessionClock<SessionState>();
  /** Ends a session with one of core's replies (a deadline passed). */
  const endWith = (session: SessionState, stage: SmtpStage, reply: SmtpReply) => () => {
    refused(session, stage, undefined, reply);
    session.connection?.send(reply.code, reply.message);
    session.connection?.close();
  };

  const callbacks = (listener: SessionRules): Partial<SMTPServerOptions> => ({
    onConnect(smtp, callback) {
      const session = stateOf(smtp);
      if (dependencies.stopping()) return callback(replyError(coreReplies.shuttingDown));
      clock.watch(
        session,
        listener,
        endWith(session, "connect", coreReplies.sessionTooLong),
        endWith(session, "data", coreReplies.dataTooSlow),
      );
      if (events.observed(sessionOpened)) events.emit(sessionOpened, { session });
      settle(
        decide("connect", [session], session).then(({ reply }) => reply),
        session,
        callback,
      );
    },

    onSecure(socket, smtp, callback) {
      const session = stateOf(smtp);
      const tlsSocket = socket as TLSSocket;
      session.tls = {
        protocol: tlsSocket.getProtocol?.() ?? "unknown",
        cipher: tlsSocket.getCipher?.()?.name ?? "unknown",
        servername: typeof smtp.servername === "string" ? smtp.servername : undefined,
        clientCertificate: clientCertificateOf(tlsSocket),
      };
      // RFC 3207 §4.2: what the client said before STARTTLS is forgotten.
      session.heloName = undefined;
      session.greeting = undefined;
      session.user = undefined;
      abandon(session);
      if (events.observed(tlsEstablished)) events.emit(tlsEstablished, { session, tls: session.tls });
      settle(
        decide("secure", [session], session).then(({ reply }) => reply),
        session,
        callback,
      );
    },

    onAuth(auth: SMTPServerAuthentication, smtp, callback) {
      const session = stateOf(smtp);
      const credentials = { method: auth.method, username: auth.username ?? "", password: auth.password ?? "" };
      decide("auth", [session, credentials], session).then(({ reply, verdict, plugin }) => {
        const accepted = verdict?.kind === "accept";
        if (accepted) session.user = credentials.username;
        else session.authFailures++;
        if (events.observed(authAttempted)) {
          events.emit(authAttempted, {
            session,
            method: credentials.method,
            username: credentials.username,
            outcome: accepted ? "accepted" : "refused",
            plugin,
          });
        }
        if (accepted) return callback(null, { user: credentials.username });
        const refusal = reply ?? coreReplies.authRefused;
        refused(session, "auth", plugin, refusal);
        closeAfterReply(session, refusal);
        callback(replyError(refusal));
      }, callback);
    },

    onMailFrom(address, smtp, callback) {
      const session = stateOf(smtp);
      const problem = mailFromProblem(address);
      if (problem) {
        refused(session, "mailFrom", undefined, problem);
        return callback(replyError(problem));
      }
      abandon(session);
      const transaction = new TransactionState(session, toAddress(address), smtp, (tx, candidate) =>
        claim(tx, candidate),
      );
      // The transaction is the session's while its mailFrom hooks run (their log lines carry its ID).
      session.transaction = transaction;
      settle(
        decide("mailFrom", [transaction, transaction.mailFrom], session).then(({ reply }) => {
          if (reply) session.transaction = undefined;
          return reply;
        }),
        session,
        callback,
      );
    },

    onRcptTo(address, smtp, callback) {
      const session = stateOf(smtp);
      const transaction = session.transaction;
      if (!transaction) return callback(replyError(coreReplies.needMail));
      const problem = rcptToProblem(address, transaction.smtpUtf8);
      if (problem) {
        refused(session, "rcptTo", undefined, problem, address.address);
        return callback(replyError(problem));
      }
      settle(
        claim(transaction, toAddress(address), address.dsn).then((outcome) => (outcome.ok ? undefined : outcome.reply)),
        session,
        callback,
      );
    },

    onData(stream: SMTPServerDataStream, smtp, callback) {
      const session = stateOf(smtp);
      const transaction = session.transaction;
      if (!transaction) return callback(replyError(coreReplies.badSequence));
      inFlight.add(session.id);
      const progress = { received: 0 };
      clock.dataStarted(session, progress);
      messagePath
        .receive(stream, session, transaction, progress)
        .then(
          (text) => callback(null, text),
          (error: Error) => callback(error),
        )
        .finally(() => {
          clock.dataEnded(session);
          if (session.transaction === transaction) session.transaction = undefined;
          inFlight.delete(session.id);
        });
    },

    onClose(smtp) {
      const session = sessions.get(smtp.id);
      if (!session) return;
      sessions.delete(smtp.id);
      clock.forget(session);
      abandon(session);
      if (events.observed(sessionClosed)) {
        events.emit(sessionClosed, { session, durationMs: Date.now() - session.connectedAt.getTime() });
      }
      const done = hooks.all("close", [session], { session: session.id }).catch(() => undefined);
      closing.add(done);
      void done.finally(() => closing.delete(done));
    },
  });

  return {
    adapterFor,
    messagePath,
    claim,
    /** Stops the session clock (the generation ended). */
    close: () => clock.close(),
    /** smtp-server's callbacks for one listener. */
    callbacksFor(_info: ListenerInfo, listener: SessionRules) {
      return callbacks(listener);
    },
  };
}
