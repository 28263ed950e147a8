// @postern/milter — Sendmail/Postfix milters (protocol version 6) for Postern. Every SMTP session
// opens one connection to each configured milter; the SMTP stages are passed on in order (connect,
// HELO, MAIL, RCPT, and at DATA the header fields, end of headers, the body in chunks and end of
// message); the first milter to refuse answers the client with its own reply; the changes a milter
// asks for at end of message are applied before the next milter sees the message.
import { isIPv4, isIPv6 } from "node:net";
import {
  type Address,
  type Logger,
  type Message,
  type Plugin,
  parseOptions,
  type Session,
  type Transaction,
  type Verdict,
} from "@postern/core";
import { applyActions, coreEditor, type DataVerdict, discardSpooled, discardVerdict } from "./apply-actions.ts";
import { asMilterError, type MilterError } from "./errors.ts";
import { clientIp, connectMacros, heloMacros, mailMacros, messageMacros, rcptMacros } from "./macros.ts";
import { MilterSession, type StageReply } from "./milter-session.ts";
import { type MilterOptions, milterOptionsSchema, type ResolvedMilter } from "./options.ts";
import { describeAddress } from "./protocol/connection.ts";
import type { AddressFamily } from "./protocol/packets.ts";
import { defaultActionVerdict, type Stage, stageVerdict } from "./verdicts.ts";

export type { MilterAction } from "./actions.ts";
export type { DataVerdict, MessageEditor } from "./apply-actions.ts";
export { applyActions } from "./apply-actions.ts";
export type { MilterErrorCode } from "./errors.ts";
export { MilterError } from "./errors.ts";
export type { MilterActionName, MilterConfig, MilterOptions } from "./options.ts";

const pluginName = "@postern/milter";

/** One milter within one SMTP session. */
interface MilterState {
  readonly milter: ResolvedMilter;
  readonly session: MilterSession;
  /**
   * active: talking. done: accepted the connection, or failed with default action "accept" —
   * left alone for the rest of the session. failed: its default action refuses every later command.
   */
  status: "active" | "done" | "failed";
  /** The milter accepted the current message (SMFIR_ACCEPT before its end): no more of it. */
  messageDone: boolean;
  /** The milter said discard during the envelope; applied at end of DATA. */
  discard: boolean;
}

export default function milter(options: MilterOptions): Plugin {
  const resolved = parseOptions(milterOptionsSchema, options, pluginName);
  let hostname = "localhost";
  let spoolDir = "";
  const sessions = new WeakMap<Session, MilterState[]>();

  const sum = (pick: (milter: ResolvedMilter) => number) =>
    resolved.milters.reduce((total, milter) => total + pick(milter), 0);
  // Our own bounds answer first (with each milter's default action); core's deadline is a backstop.
  const margin = 2000;
  const envelopeTimeoutMs = sum((milter) => 2 * milter.timeouts.commandMs) + margin;

  /** Logs the failure once, closes the connection and applies the milter's default action. */
  const fail = (state: MilterState, error: unknown, stage: string, log: Logger): void => {
    const failure: MilterError = asMilterError(error, state.milter.name, stage);
    state.session.close();
    const action = state.milter.defaultAction;
    log.warn(
      { code: failure.code, milter: state.milter.name, address: describeAddress(state.milter.address), action },
      `milter ${state.milter.name} failed at ${stage}: ${failure.message}; default action ${action}`,
    );
    state.status = action === "accept" ? "done" : "failed";
  };

  /** The default action's refusal when this milter failed (and its action is not "accept"). */
  const failureVerdict = (state: MilterState, stage: Stage): Verdict | undefined => {
    const action = state.milter.defaultAction;
    return state.status === "failed" && action !== "accept" ? defaultActionVerdict(action, stage) : undefined;
  };

  /** The refusal of a milter that failed earlier in the session, if any. */
  const earlierFailure = (states: readonly MilterState[], stage: Stage): Verdict | undefined => {
    for (const state of states) {
      const verdict = failureVerdict(state, stage);
      if (verdict) return verdict;
    }
    return undefined;
  };

  /** Runs one envelope stage on every milter still listening, in order; the first refusal answers. */
  const envelopeStage = async (
    states: readonly MilterState[],
    stage: Stage,
    log: Logger,
    send: (session: MilterSession) => Promise<StageReply>,
  ): Promise<Verdict | undefined> => {
    for (const state of states) {
      if (state.status !== "active" || (state.messageDone && stage !== "helo")) continue;
      let reply: StageReply;
      try {
        reply = await send(state.session);
      } catch (error) {
        fail(state, error, stage, log);
        const verdict = failureVerdict(state, stage);
        if (verdict) return verdict;
        continue;
      }
      if (reply.kind === "accept") {
        if (stage === "helo") state.status = "done";
        else state.messageDone = true;
      }
      if (reply.kind === "discard") state.discard = true;
      const verdict = stageVerdict(reply, stage);
      if (verdict) {
        log.info({ milter: state.milter.name, reply }, `milter ${state.milter.name} refused at ${stage}`);
        return verdict;
      }
    }
    return undefined;
  };

  const parametersOf = (address: Address): string[] =>
    Object.entries(address.parameters).map(([name, value]) => (value === true ? name : `${name}=${value}`));

  const contentStage = async (
    transaction: Transaction,
    message: Message,
    states: readonly MilterState[],
    log: Logger,
  ): Promise<DataVerdict | undefined> => {
    const editor = coreEditor(transaction, message);
    if (states.some((state) => state.discard)) return discardVerdict(editor, "discarded by a mail filter");
    const macros = messageMacros(transaction);
    for (const state of states) {
      if (state.status !== "active" || state.messageDone) continue;
      let outcome: Awaited<ReturnType<MilterSession["message"]>>;
      try {
        outcome = await state.session.message(message.stream(), {
          data: macros,
          endOfHeaders: macros,
          endOfMessage: macros,
        });
      } catch (error) {
        fail(state, error, "data", log);
        const verdict = failureVerdict(state, "data");
        if (verdict) return verdict;
        continue;
      }
      if (outcome.reply.kind === "discard") {
        log.info({ milter: state.milter.name }, `milter ${state.milter.name} discarded the message`);
        return discardVerdict(editor, `discarded by milter ${state.milter.name}`);
      }
      const verdict = stageVerdict(outcome.reply, "data");
      if (verdict) {
        await discardSpooled(outcome.actions);
        log.info(
          { milter: state.milter.name, reply: outcome.reply },
          `milter ${state.milter.name} refused the message`,
        );
        return verdict;
      }
      try {
        await applyActions(editor, outcome.actions);
      } catch (error) {
        const failure = asMilterError(error, state.milter.name, "data");
        log.warn({ code: failure.code, milter: state.milter.name }, `milter ${state.milter.name}: ${failure.message}`);
        return defaultActionVerdict("tempfail", "data");
      }
    }
    return undefined;
  };

  return {
    name: pluginName,
    setup(server) {
      hostname = server.hostname;
      spoolDir = server.spoolDir;
    },
    hooks: {
      connect: {
        timeoutMs: sum((milter) => milter.timeouts.connectMs + milter.timeouts.commandMs) + margin,
        async handler(session, { log }) {
          const states: MilterState[] = resolved.milters.map((config) => ({
            milter: config,
            session: new MilterSession(
              { name: config.name, address: config.address, timeouts: config.timeouts, actions: config.actionFlags },
              spoolDir,
            ),
            status: "active",
            messageDone: false,
            discard: false,
          }));
          sessions.set(session, states);
          const ip = clientIp(session.remoteAddress);
          const family: AddressFamily = isIPv4(ip) ? "inet" : isIPv6(ip) ? "inet6" : "unknown";
          const client = {
            hostname: session.clientHostname ?? `[${ip}]`,
            family,
            port: session.remotePort,
            address: ip,
          };
          const macros = connectMacros(session, hostname);
          for (const state of states) {
            let reply: StageReply;
            try {
              reply = await state.session.open(client, macros);
            } catch (error) {
              // Refused from MAIL FROM on (as Postfix does), so the client gets a clear reply there.
              fail(state, error, "connect", log);
              continue;
            }
            if (reply.kind === "accept") state.status = "done";
            const verdict = stageVerdict(reply, "connect");
            if (verdict) {
              log.info({ milter: state.milter.name, reply }, `milter ${state.milter.name} refused the connection`);
              // The milters after it never heard of this connection: leave them out of it.
              for (const later of states.slice(states.indexOf(state) + 1)) later.status = "done";
              return verdict;
            }
          }
          return undefined;
        },
      },
      helo: {
        timeoutMs: envelopeTimeoutMs,
        handler(session, name, { log }) {
          const states = sessions.get(session) ?? [];
          return envelopeStage(states, "helo", log, (milter) => milter.helo(name, heloMacros(session)));
        },
      },
      mailFrom: {
        timeoutMs: envelopeTimeoutMs,
        async handler(transaction, address, { log }) {
          const states = sessions.get(transaction.session) ?? [];
          const failure = earlierFailure(states, "mail");
          if (failure) return failure;
          for (const state of states) {
            state.messageDone = false;
            state.discard = false;
          }
          const macros = mailMacros(transaction);
          return envelopeStage(states, "mail", log, (milter) =>
            milter.mail(address.address, parametersOf(address), macros),
          );
        },
      },
      rcptTo: {
        // Before the plugins that claim recipients: the first accept ends the chain.
        order: "pre",
        timeoutMs: envelopeTimeoutMs,
        async handler(transaction, recipient, { log }) {
          const states = sessions.get(transaction.session) ?? [];
          const failure = earlierFailure(states, "rcpt");
          if (failure) return failure;
          const macros = rcptMacros(transaction, recipient.address);
          return envelopeStage(states, "rcpt", log, (milter) =>
            milter.rcpt(recipient.address, parametersOf(recipient), macros),
          );
        },
      },
      data: {
        timeoutMs: sum((milter) => milter.timeouts.contentMs) + margin,
        async handler(transaction, message, { log }) {
          const states = sessions.get(transaction.session) ?? [];
          const failure = earlierFailure(states, "data");
          if (failure) return failure;
          return contentStage(transaction, message, states, log);
        },
      },
      close(session) {
        for (const state of sessions.get(session) ?? []) {
          if (state.status === "failed") state.session.close();
          else state.session.quit();
        }
        sessions.delete(session);
      },
    },
  } satisfies Plugin;
}
