// LMTP sessions (RFC 2033) with nodemailer's SMTP connection in LMTP mode, over TCP or a Unix
// socket: opening one (greeting and LHLO), and running one transaction on it that reports the
// outcome per recipient. A recipient counts as delivered only when the server answered 2xx for it
// after the message; everything that goes wrong on the connection is a temporary failure of every
// recipient not yet answered. lmtp-pool.ts keeps sessions open between transactions.
import { connect as netConnect, type Socket } from "node:net";
import { Readable } from "node:stream";
import { PosternError } from "@postern/core";
import SMTPConnection from "nodemailer/lib/smtp-connection";

export type RecipientOutcome =
  | { recipient: string; kind: "delivered" }
  | { recipient: string; kind: "temporary" | "permanent"; reply: string; code: number; status: string | undefined };

export interface LmtpTarget {
  host?: string;
  port: number;
  socket?: string;
}

/** How to reach the LMTP server and talk to it; the same for every session of a pool. */
export interface SessionSettings {
  target: LmtpTarget;
  lhloName: string;
  connectTimeoutMs: number;
  socketTimeoutMs: number;
}

/** One message for one LMTP transaction. */
export interface LmtpTransaction {
  mailFrom: string;
  recipients: readonly string[];
  message: Readable;
  eightBit: boolean;
  signal: AbortSignal;
}

/** A failure of the connection itself (nothing per recipient is known). */
export class LmtpConnectionError extends PosternError {
  /** True when the message transfer had begun: copies may have been stored without a reply. */
  readonly transferStarted: boolean;
  constructor(message: string, code: string, transferStarted: boolean, cause?: unknown) {
    super(code, message, { cause, plugin: "@postern/lmtp", hook: "queue" });
    this.transferStarted = transferStarted;
  }
}

interface NodemailerError extends Error {
  code?: string;
  command?: string;
  response?: string;
  responseCode?: number;
  recipient?: string;
  rejectedErrors?: NodemailerError[];
}

/** An open LMTP session: greeted, LHLO answered, ready for MAIL FROM. */
export type LmtpSession = SMTPConnection;

export function describeTarget(target: LmtpTarget): string {
  return target.socket ?? `${target.host}:${target.port}`;
}

function outcomeOf(error: NodemailerError, recipient: string): RecipientOutcome {
  const code = error.responseCode ?? 451;
  const reply = (error.response ?? error.message).replace(/[\r\n]+/g, " ");
  const status = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})/.exec(reply)?.[1];
  // 5xx is permanent except 503 (a sequence problem, not a verdict on the recipient).
  const permanent = code >= 500 && code !== 503;
  return { recipient, kind: permanent ? "permanent" : "temporary", reply, code, status };
}

async function openSocket(target: LmtpTarget, timeoutMs: number, signal: AbortSignal): Promise<Socket | undefined> {
  if (!target.socket) return undefined;
  const socket = netConnect({ path: target.socket });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        Object.assign(new Error(`no connection to ${target.socket} within ${timeoutMs} ms`), { code: "ETIMEDOUT" }),
      );
    }, timeoutMs);
    const onAbort = () => fail(new Error("aborted"));
    const fail = (error: Error) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(error);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("error", fail);
    socket.once("connect", () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket.off("error", fail);
      resolve();
    });
  });
  return socket;
}

/** Connects, reads the greeting and sends LHLO. Throws LmtpConnectionError (nothing was sent). */
export async function openSession(settings: SessionSettings, signal: AbortSignal): Promise<LmtpSession> {
  const { target } = settings;
  let socket: Socket | undefined;
  try {
    socket = await openSocket(target, settings.connectTimeoutMs, signal);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "ECONNECTION";
    throw new LmtpConnectionError(
      `cannot connect to ${target.socket}: ${(error as Error).message}`,
      code,
      false,
      error,
    );
  }
  const connection = new SMTPConnection({
    lmtp: true,
    host: target.host ?? "localhost",
    port: target.port,
    ...(socket ? { connection: socket } : {}),
    name: settings.lhloName,
    ignoreTLS: true,
    connectionTimeout: settings.connectTimeoutMs,
    greetingTimeout: settings.connectTimeoutMs,
    socketTimeout: settings.socketTimeoutMs,
    allowInternalNetworkInterfaces: true,
    logger: false,
  });
  // Errors while no transaction listens (an idle session's socket failing) must not go unheard;
  // the session then ends, and its pool drops it.
  connection.on("error", () => undefined);
  const onAbort = () => connection.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once("error", reject);
      connection.connect((error?: Error) => {
        connection.off("error", reject);
        if (error) reject(error);
        else resolve();
      });
    });
  } catch (error) {
    connection.close();
    throw new LmtpConnectionError(
      `cannot connect to ${describeTarget(target)}: ${(error as Error).message}`,
      (error as NodemailerError).code ?? "ECONNECTION",
      false,
      error,
    );
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  return connection;
}

export interface TransactionResult {
  outcomes: RecipientOutcome[];
  /**
   * False when the transaction ended without the message (MAIL FROM, every RCPT or DATA refused):
   * the server may still hold a sender or recipients, so the session needs RSET before the next
   * transaction. True after the per-recipient replies to the message, which end the transaction.
   */
  completed: boolean;
}

/**
 * One LMTP transaction on an open session. Throws LmtpConnectionError when the session failed
 * (it is then unusable); per-recipient refusals are outcomes, not errors.
 */
export async function runTransaction(
  session: LmtpSession,
  transaction: LmtpTransaction,
  where: string,
): Promise<TransactionResult> {
  let transferStarted = false;
  const onAbort = () => session.close();
  transaction.signal.addEventListener("abort", onAbort, { once: true });
  try {
    // nodemailer reads the message only after the server accepted DATA (354); the generator runs
    // on the first read, so the flag says whether the transfer had begun. Until then the source
    // is untouched, so a transaction that fails before it can be run again on another session.
    const source = transaction.message;
    const message = Readable.from(
      (async function* () {
        transferStarted = true;
        yield* source;
      })(),
      { objectMode: false },
    );
    let completed = true;
    const info = await new Promise<{ accepted: string[]; rejectedErrors?: NodemailerError[] }>((resolve, reject) => {
      session.once("end", onEnd);
      function onEnd() {
        reject(Object.assign(new Error("connection closed"), { code: "ECONNECTION" }));
      }
      session.send(
        { from: transaction.mailFrom, to: [...transaction.recipients], use8BitMime: transaction.eightBit },
        message,
        (error, result) => {
          session.off("end", onEnd);
          if (error) reject(error);
          else resolve(result as never);
        },
      );
    }).catch((error: NodemailerError) => {
      const answered = Boolean(error.responseCode) && error.responseCode !== 421 && !transferStarted;
      if (!answered) {
        throw new LmtpConnectionError(
          `LMTP delivery to ${where} failed${transferStarted ? " during the message transfer" : ""}: ${error.response ?? error.message}`,
          error.code ?? "ECONNECTION",
          transferStarted,
          error,
        );
      }
      completed = false;
      // Refused before the message: it will not be sent on this session or any other.
      source.destroy();
      // Every recipient refused at RCPT: an answer per recipient, not a connection problem.
      if (error.rejectedErrors?.length) return { accepted: [], rejectedErrors: error.rejectedErrors };
      // MAIL FROM or DATA refused: the server's answer holds for every recipient.
      return { accepted: [], rejectedErrors: transaction.recipients.map((recipient) => ({ ...error, recipient })) };
    });
    const refused = new Map<string, NodemailerError>();
    for (const error of info.rejectedErrors ?? []) if (error.recipient) refused.set(error.recipient, error);
    const accepted = new Set(info.accepted);
    const outcomes = transaction.recipients.map((recipient): RecipientOutcome => {
      const error = refused.get(recipient);
      if (error) return outcomeOf(error, recipient);
      if (accepted.has(recipient)) return { recipient, kind: "delivered" };
      // Neither accepted nor refused: should not happen; never count it as delivered.
      return { recipient, kind: "temporary", reply: "no reply for this recipient", code: 451, status: undefined };
    });
    return { outcomes, completed };
  } finally {
    transaction.signal.removeEventListener("abort", onAbort);
  }
}

/** RSET: back to the state after LHLO. Rejects if the server refuses or the session fails. */
export function resetSession(session: LmtpSession): Promise<void> {
  return new Promise((resolve, reject) => {
    const onEnd = () => reject(new Error("connection closed during RSET"));
    session.once("end", onEnd);
    session.reset((error) => {
      session.off("end", onEnd);
      if (error) reject(error);
      else resolve();
    });
  });
}

/** QUIT, then close the socket if the server does not within a second. */
export function closeSession(session: LmtpSession): void {
  try {
    session.quit();
  } catch {
    // already closed
  }
  setTimeout(() => session.close(), 1000).unref();
}
