// The events core emits on the observer channel (events.ts), with their payloads. Observers get
// them after the fact: metrics, traces, the per-transaction log line, rate counting.
import type { PosternError } from "./errors.ts";
import { eventKey } from "./events.ts";
import type { CallBindings } from "./hook-runner.ts";
import type { SmtpReply } from "./reply.ts";
import type { Recipient, RouteGroup, Session, TlsInfo, Transaction } from "./session.ts";
import type { SpoolProblem } from "./spool.ts";

/** One handler call of any hook set (SMTP hooks, outbound's, a plugin's own). */
export interface HookCompletedEvent {
  readonly set: string;
  readonly hook: string;
  readonly plugin: string;
  /** What the handler answered (a verdict for SMTP hooks); undefined for "nothing" or an ignored failure. */
  readonly answer: unknown;
  /** Set when the handler threw, returned a wrong value or missed its deadline. */
  readonly error: PosternError | undefined;
  readonly durationMs: number;
  /** The call's session id and queue ID (for SMTP hooks), as bound into its log lines. */
  readonly bindings: CallBindings;
}
export const hookCompleted = eventKey<HookCompletedEvent>("hook.completed");

export interface SessionOpenedEvent {
  readonly session: Session;
}
export const sessionOpened = eventKey<SessionOpenedEvent>("session.opened");

export interface SessionClosedEvent {
  readonly session: Session;
  readonly durationMs: number;
}
export const sessionClosed = eventKey<SessionClosedEvent>("session.closed");

export interface TlsEstablishedEvent {
  readonly session: Session;
  readonly tls: TlsInfo;
}
export const tlsEstablished = eventKey<TlsEstablishedEvent>("tls.established");

export interface AuthAttemptedEvent {
  readonly session: Session;
  readonly method: string;
  readonly username: string;
  readonly outcome: "accepted" | "refused";
  /** The plugin whose verdict decided; undefined when nobody answered (refused by default). */
  readonly plugin: string | undefined;
}
export const authAttempted = eventKey<AuthAttemptedEvent>("auth.attempted");

/** The SMTP stages a refusal can come from. */
export type SmtpStage = "connect" | "secure" | "helo" | "auth" | "mailFrom" | "rcptTo" | "data" | "queue";

/** Core answered a command with a refusal (a plugin's verdict, a default, a failure, a limit). */
export interface CommandRefusedEvent {
  readonly session: Session;
  readonly transaction: Transaction | undefined;
  readonly stage: SmtpStage;
  /** The plugin whose verdict it was; undefined for core's defaults and limits. */
  readonly plugin: string | undefined;
  readonly reply: SmtpReply;
  /** rcptTo: the address refused. */
  readonly address?: string;
}
export const commandRefused = eventKey<CommandRefusedEvent>("command.refused");

export interface SpoolRefusedEvent {
  readonly session: Session;
  readonly transaction: Transaction;
  readonly problem: SpoolProblem;
  /** Bytes kept before the problem was found. */
  readonly size: number;
}
export const spoolRefused = eventKey<SpoolRefusedEvent>("spool.refused");

export type TransactionOutcome = "queued" | "discarded" | "refused" | "abandoned";

/**
 * A transaction ended: queued (stored by every route group), discarded (a data hook said so),
 * refused at end of DATA, or abandoned (RSET, a new MAIL FROM, the client left) before that.
 */
export interface TransactionEndedEvent {
  readonly transaction: Transaction;
  readonly outcome: TransactionOutcome;
  /** The reply to DATA, when the transaction got that far. */
  readonly reply: SmtpReply | undefined;
  /** Bytes received, when DATA was received. */
  readonly size: number | undefined;
  /** The route groups the message was stored for (queued only). */
  readonly groups: readonly RouteGroup[];
  /**
   * Set on a client's retry of a transaction that was answered 4xx after some of its route groups
   * were stored: the recipients an earlier attempt stored, not stored again (limits.routeMemory).
   * They are in `groups` too: the earlier attempt was refused, so this is where they are reported.
   */
  readonly alreadyStored?: readonly RouteGroup[];
  /** Recipients accepted, with the address each came from. */
  readonly recipients: readonly Recipient[];
  /** Why, for "discarded": the discard verdict's reason. */
  readonly reason: string | undefined;
  readonly durationMs: number;
}
export const transactionEnded = eventKey<TransactionEndedEvent>("transaction.ended");
