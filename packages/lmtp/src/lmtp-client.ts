// One LMTP transaction (RFC 2033) with nodemailer's SMTP connection in LMTP mode, over TCP or a
// Unix socket, reporting the outcome per recipient. A recipient counts as delivered only when the
// server answered 2xx for it after the message; everything that goes wrong on the connection is a
// temporary failure of every recipient not yet answered.
import { connect as netConnect, type Socket } from "node:net";
import { Readable } from "node:stream";
import SMTPConnection from "nodemailer/lib/smtp-connection";

export type RecipientOutcome =
  | { recipient: string; kind: "delivered" }
  | { recipient: string; kind: "temporary" | "permanent"; reply: string; code: number; status: string | undefined };

export interface LmtpTarget {
  host?: string;
  port: number;
  socket?: string;
}

export interface LmtpDelivery {
  target: LmtpTarget;
  lhloName: string;
  mailFrom: string;
  recipients: readonly string[];
  message: Readable;
  eightBit: boolean;
  connectTimeoutMs: number;
  socketTimeoutMs: number;
  signal: AbortSignal;
}

/** A failure of the connection itself (nothing per recipient is known). */
export class LmtpConnectionError extends Error {
  readonly code: string;
  /** True when the message transfer had begun: copies may have been stored without a reply. */
  readonly transferStarted: boolean;
  constructor(message: string, code: string, transferStarted: boolean, cause?: unknown) {
    super(message, { cause });
    this.name = "LmtpConnectionError";
    this.code = code;
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
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    signal.addEventListener("abort", () => fail(new Error("aborted")), { once: true });
    socket.once("error", fail);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", fail);
      resolve();
    });
  });
  return socket;
}

export async function deliverOverLmtp(delivery: LmtpDelivery): Promise<RecipientOutcome[]> {
  const { target } = delivery;
  let socket: Socket | undefined;
  try {
    socket = await openSocket(target, delivery.connectTimeoutMs, delivery.signal);
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
    name: delivery.lhloName,
    ignoreTLS: true,
    connectionTimeout: delivery.connectTimeoutMs,
    greetingTimeout: delivery.connectTimeoutMs,
    socketTimeout: delivery.socketTimeoutMs,
    allowInternalNetworkInterfaces: true,
    logger: false,
  });
  let transferStarted = false;
  const where = target.socket ?? `${target.host}:${target.port}`;
  const onAbort = () => connection.close();
  delivery.signal.addEventListener("abort", onAbort, { once: true });
  // Errors after the outcome (the socket closing) must not go unheard.
  connection.on("error", () => undefined);
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once("error", reject);
      connection.connect(() => {
        connection.off("error", reject);
        resolve();
      });
    }).catch((error: NodemailerError) => {
      throw new LmtpConnectionError(
        `cannot connect to ${where}: ${error.message}`,
        error.code ?? "ECONNECTION",
        false,
        error,
      );
    });

    // nodemailer reads the message only after the server accepted DATA (354); the generator runs
    // on the first read, so the flag says whether the transfer had begun.
    const source = delivery.message;
    const message = Readable.from(
      (async function* () {
        transferStarted = true;
        yield* source;
      })(),
      { objectMode: false },
    );
    const info = await new Promise<{ accepted: string[]; rejectedErrors?: NodemailerError[] }>((resolve, reject) => {
      connection.send(
        { from: delivery.mailFrom, to: [...delivery.recipients], use8BitMime: delivery.eightBit },
        message,
        (error, result) => (error ? reject(error) : resolve(result as never)),
      );
    }).catch((error: NodemailerError) => {
      // Every recipient refused at RCPT: an answer per recipient, not a connection problem.
      if (error.rejectedErrors?.length && error.responseCode)
        return { accepted: [], rejectedErrors: error.rejectedErrors };
      // MAIL FROM or DATA refused: the server's answer holds for every recipient.
      if (error.responseCode && !transferStarted) {
        return { accepted: [], rejectedErrors: delivery.recipients.map((recipient) => ({ ...error, recipient })) };
      }
      throw new LmtpConnectionError(
        `LMTP delivery to ${where} failed${transferStarted ? " during the message transfer" : ""}: ${error.response ?? error.message}`,
        error.code ?? "ECONNECTION",
        transferStarted,
        error,
      );
    });
    const refused = new Map<string, NodemailerError>();
    for (const error of info.rejectedErrors ?? []) if (error.recipient) refused.set(error.recipient, error);
    const accepted = new Set(info.accepted);
    return delivery.recipients.map((recipient): RecipientOutcome => {
      const error = refused.get(recipient);
      if (error) return outcomeOf(error, recipient);
      if (accepted.has(recipient)) return { recipient, kind: "delivered" };
      // Neither accepted nor refused: should not happen; never count it as delivered.
      return { recipient, kind: "temporary", reply: "no reply for this recipient", code: 451, status: undefined };
    });
  } finally {
    delivery.signal.removeEventListener("abort", onAbort);
    try {
      connection.quit();
    } catch {
      // already closed
    }
    setTimeout(() => connection.close(), 1000).unref();
  }
}
