// Builds each transaction's story from the observer channel: who the client was, what it said,
// every hook call with the plugin's answer and its duration (the session's own calls — connect,
// helo, auth — first), each recipient with its outcome, and the final reply. One record per
// transaction when it ends; the log line, the admin UI's trail and the traces all read it.
//
// Kept per session and per transaction only while they are open, and bounded: a session that
// sends thousands of commands keeps the first `maxTrail` calls of each transaction.
import {
  type CommandRefusedEvent,
  commandRefused,
  type EventChannel,
  type HookCompletedEvent,
  hookCompleted,
  type ServerContext,
  type SessionClosedEvent,
  type SmtpReply,
  sessionClosed,
  sessionOpened,
  type TransactionEndedEvent,
  type TransactionOutcome,
  transactionEnded,
} from "@postern/core";

/** One hook call in a trail. */
export interface TrailStep {
  readonly set: string;
  readonly hook: string;
  readonly plugin: string;
  /**
   * What the plugin answered: "accept", "reject", "defer", "disconnect", "discard", "-" (nothing,
   * the next plugin decides), "error" or "timeout"; for outbound's route hook the decision type.
   */
  readonly verdict: string;
  /** The reply a refusal carries ("550 5.7.1 Relaying denied"). */
  readonly reply: string | undefined;
  /** The failure's message for "error" and "timeout". */
  readonly error: string | undefined;
  readonly durationMs: number;
  /** Milliseconds since the session connected. */
  readonly atMs: number;
}

export type RecipientOutcome = "accepted" | "refused";

export interface RecipientRecord {
  readonly address: string;
  /** The RCPT TO address this recipient came from (an alias expanded to it); same as address otherwise. */
  readonly original: string;
  /** The route it was accepted for; undefined when refused. */
  readonly route: string | undefined;
  readonly outcome: RecipientOutcome;
  /** The refusal's reply. */
  readonly reply: string | undefined;
}

export interface TransactionRecord {
  readonly queueId: string;
  readonly session: string;
  /** Epoch milliseconds of MAIL FROM, and of the end. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly outcome: TransactionOutcome;
  readonly listener: string;
  readonly client: { readonly address: string; readonly port: number; readonly hostname: string | undefined };
  readonly helo: string | undefined;
  readonly tls: { readonly protocol: string; readonly cipher: string } | undefined;
  readonly user: string | undefined;
  readonly from: string;
  readonly recipients: readonly RecipientRecord[];
  /** Bytes received (DATA), when it got that far. */
  readonly size: number | undefined;
  readonly delays: {
    /** Connect to MAIL FROM. */
    readonly sessionMs: number;
    /** MAIL FROM to the end (DATA's reply, or the abandonment). */
    readonly transactionMs: number;
  };
  readonly trail: readonly TrailStep[];
  /** The reply to DATA, when there was one. */
  readonly reply: string | undefined;
  /** Why a message was discarded, or the quarantine reason. */
  readonly reason: string | undefined;
}

interface OpenSession {
  /** performance.now() at connect. */
  readonly connectedAt: number;
  readonly steps: TrailStep[];
  /** Transactions with hook calls recorded (one refused at MAIL FROM never ends: dropped at close). */
  readonly queueIds: Set<string>;
}

interface OpenTransaction {
  readonly steps: TrailStep[];
  readonly refused: RecipientRecord[];
}

const replyText = (reply: SmtpReply) => `${reply.code} ${reply.message}`;

/** The verdict name and reply of a hook's answer, for any hook set. */
function describeAnswer(event: HookCompletedEvent): { verdict: string; reply: string | undefined } {
  if (event.error) {
    return { verdict: event.error.code === "POSTERN_HOOK_TIMEOUT" ? "timeout" : "error", reply: undefined };
  }
  const answer = event.answer as { kind?: unknown; type?: unknown; code?: unknown; status?: unknown; text?: unknown };
  if (answer === undefined || answer === null || typeof answer !== "object") return { verdict: "-", reply: undefined };
  if (typeof answer.kind === "string") {
    const reply =
      answer.kind === "accept" || answer.kind === "discard" || typeof answer.code !== "number"
        ? undefined
        : `${answer.code} ${String(answer.status)} ${String(answer.text)}`;
    return { verdict: answer.kind, reply };
  }
  if (typeof answer.type === "string") return { verdict: answer.type, reply: undefined };
  return { verdict: "answered", reply: undefined };
}

export interface RecorderOptions {
  /** Hook calls kept per transaction (and per session before it); later ones are counted, not kept. */
  readonly maxTrail?: number;
}

export class TransactionRecorder {
  readonly #sessions = new Map<string, OpenSession>();
  readonly #transactions = new Map<string, OpenTransaction>();
  readonly #subscribers = new Set<(record: TransactionRecord) => void>();
  readonly #maxTrail: number;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(events: EventChannel, options: RecorderOptions = {}) {
    this.#maxTrail = options.maxTrail ?? 200;
    this.#unsubscribe.push(
      events.on(sessionOpened, (event) => {
        this.#sessions.set(event.session.id, { connectedAt: performance.now(), steps: [], queueIds: new Set() });
      }),
      events.on(hookCompleted, (event) => this.#hook(event)),
      events.on(commandRefused, (event) => this.#refused(event)),
      events.on(transactionEnded, (event) => this.#ended(event)),
      events.on(sessionClosed, (event: SessionClosedEvent) => {
        const open = this.#sessions.get(event.session.id);
        for (const queueId of open?.queueIds ?? []) this.#transactions.delete(queueId);
        this.#sessions.delete(event.session.id);
      }),
    );
  }

  /** Calls `subscriber` with every record as its transaction ends; returns the unsubscribe function. */
  subscribe(subscriber: (record: TransactionRecord) => void): () => void {
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** Stops listening to the channel. */
  close(): void {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    this.#sessions.clear();
    this.#transactions.clear();
  }

  #session(id: string): OpenSession {
    let open = this.#sessions.get(id);
    if (!open) {
      // A session opened before this recorder subscribed.
      open = { connectedAt: performance.now(), steps: [], queueIds: new Set() };
      this.#sessions.set(id, open);
    }
    return open;
  }

  #refused(event: CommandRefusedEvent): void {
    if (event.stage !== "rcptTo" || !event.address || !event.transaction) return;
    this.#session(event.session.id).queueIds.add(event.transaction.id);
    this.#transaction(event.transaction.id).refused.push({
      address: event.address,
      original: event.address,
      route: undefined,
      outcome: "refused",
      reply: replyText(event.reply),
    });
  }

  #transaction(id: string): OpenTransaction {
    let open = this.#transactions.get(id);
    if (!open) {
      open = { steps: [], refused: [] };
      this.#transactions.set(id, open);
    }
    return open;
  }

  #hook(event: HookCompletedEvent): void {
    const sessionId = event.bindings.session;
    if (sessionId === undefined || event.hook === "close") return;
    const session = this.#session(sessionId);
    const queueId = event.bindings.queueId;
    if (queueId !== undefined) session.queueIds.add(queueId);
    const steps = queueId === undefined ? session.steps : this.#transaction(queueId).steps;
    if (steps.length >= this.#maxTrail) return;
    const { verdict, reply } = describeAnswer(event);
    steps.push({
      set: event.set,
      hook: event.hook,
      plugin: event.plugin,
      verdict,
      reply,
      error: event.error?.message,
      durationMs: event.durationMs,
      atMs: performance.now() - event.durationMs - session.connectedAt,
    });
  }

  #ended(event: TransactionEndedEvent): void {
    const { transaction } = event;
    const session = transaction.session;
    const open = this.#transactions.get(transaction.id);
    this.#transactions.delete(transaction.id);
    this.#sessions.get(session.id)?.queueIds.delete(transaction.id);
    if (this.#subscribers.size === 0) return;
    const sessionSteps = this.#sessions.get(session.id)?.steps ?? [];
    const endedAt = Date.now();
    const record: TransactionRecord = {
      queueId: transaction.id,
      session: session.id,
      startedAt: endedAt - event.durationMs,
      endedAt,
      outcome: event.outcome,
      listener: session.listener.name,
      client: { address: session.remoteAddress, port: session.remotePort, hostname: session.clientHostname },
      helo: session.heloName,
      tls: session.tls ? { protocol: session.tls.protocol, cipher: session.tls.cipher } : undefined,
      user: session.user,
      from: transaction.mailFrom.address,
      recipients: [
        ...event.recipients.map(
          (recipient): RecipientRecord => ({
            address: recipient.address,
            original: recipient.original,
            route: recipient.route,
            outcome: "accepted",
            reply: undefined,
          }),
        ),
        ...(open?.refused ?? []),
      ],
      size: event.size,
      delays: {
        sessionMs: Math.max(0, endedAt - event.durationMs - session.connectedAt.getTime()),
        transactionMs: event.durationMs,
      },
      trail: [...sessionSteps, ...(open?.steps ?? [])],
      reply: event.reply ? replyText(event.reply) : undefined,
      reason: event.reason ?? transaction.quarantined?.reason,
    };
    for (const subscriber of this.#subscribers) subscriber(record);
  }
}

const recorders = new WeakMap<EventChannel, TransactionRecorder>();

/**
 * The recorder of a server's observer channel, shared by every plugin that reads transaction
 * records (the log line, the admin UI, traces): the trail is built once, whoever asks.
 */
export function recorderFor(context: Pick<ServerContext, "events">): TransactionRecorder {
  let recorder = recorders.get(context.events);
  if (!recorder) {
    recorder = new TransactionRecorder(context.events);
    recorders.set(context.events, recorder);
  }
  return recorder;
}
