// One SMTP client connection to one next hop, on nodemailer's SMTPConnection (which connects to
// the address it is given: MX selection is ours). It turns nodemailer's callbacks and error
// shapes into promises and replies the queue understands, and remembers what the session is
// (TLS, verified or not) so the pool only reuses it where that is good enough.
import type { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import SMTPConnection from "nodemailer/lib/smtp-connection";
import { daneMismatch, peerChain } from "./dane.ts";
import type { TlsLevel } from "./options.ts";
import type { DeliveryReply } from "./queue/store.ts";
import { describeHost, localReply, parseReply } from "./replies.ts";
import { type NextHop, strictestTls } from "./routing.ts";
import { certificateFailure, type TlsFailure } from "./tls-outcome.ts";

export interface SessionSettings {
  heloName: string;
  /** Extra CA certificates for "verify". */
  ca: string[] | undefined;
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
}

/**
 * Why a session could not be opened; `tls` marks failures of required TLS, `tlsFailure` any TLS
 * failure in RFC 8460 terms (TLS reports), `localAddress` the address we connected from.
 */
export class SessionError extends Error {
  readonly reply: DeliveryReply;
  readonly tls: boolean;
  readonly tlsFailure: TlsFailure | undefined;
  localAddress: string | undefined;
  constructor(reply: DeliveryReply, tls: boolean, tlsFailure?: TlsFailure) {
    super(`${reply.code} ${reply.status} ${reply.text}`);
    this.name = "SessionError";
    this.reply = reply;
    this.tls = tls;
    this.tlsFailure = tlsFailure;
  }
}

export interface SendEnvelope {
  from: string;
  to: readonly string[];
  size: number;
  requireTls: boolean;
  use8BitMime: boolean;
  dsn?: { ret?: string | undefined; envid?: string | undefined } | undefined;
  /** Each recipient's NOTIFY and ORCPT (RFC 3461), sent on its RCPT TO when the peer offers DSN. */
  recipientDsn?: ReadonlyMap<string, RecipientDsn> | undefined;
}

export interface RecipientDsn {
  readonly notify?: readonly string[] | undefined;
  /** "addr-type;address", not xtext-encoded (this module encodes it). */
  readonly orcpt?: string | undefined;
}

/**
 * RFC 3461 §4 xtext: "+" and "=" and anything outside "!".."~" become "+HH" (UTF-8 bytes for a
 * UTF-8 address, as RFC 6533 §3 allows for the "utf-8" address type's xtext form).
 */
export function encodeXtext(value: string): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    out +=
      byte < 0x21 || byte > 0x7e || byte === 0x2b || byte === 0x3d
        ? `+${byte.toString(16).toUpperCase().padStart(2, "0")}`
        : String.fromCharCode(byte);
  }
  return out;
}

/** nodemailer's private state this module reads (pinned by the DSN and SMTPUTF8 tests over SMTP). */
interface ConnectionInternals {
  _supportedExtensions?: string[];
  _recipientQueue?: string[];
  _envelope?: unknown;
  _getDsnRcptToArgs?: () => string;
}

export type SendResult =
  | {
      kind: "sent";
      accepted: string[];
      rejected: Map<string, DeliveryReply>;
      /** The reply to the end of DATA. */
      reply: DeliveryReply;
    }
  | {
      kind: "failed";
      /** Where it failed: MAIL FROM refused, all RCPT refused, DATA refused, or the connection. */
      stage: "MAIL" | "RCPT" | "DATA" | "CONNECTION" | "REQUIRETLS";
      reply: DeliveryReply;
      /** Per-recipient replies when recipients were refused. */
      rejected: Map<string, DeliveryReply>;
      /** Recipients the server had accepted before DATA failed. */
      accepted: string[];
      /** True when not a byte of the message was read (safe to try again on a new connection). */
      untouched: boolean;
    };

interface NodemailerError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejected?: string[];
  rejectedErrors?: NodemailerError[];
}

const tlsRequired = (level: TlsLevel) => level === "encrypt" || level === "verify";

/** Pool key: sessions are interchangeable only with the same peer, TLS demand and credentials. */
export function sessionKey(hop: NextHop): string {
  return [
    hop.address,
    hop.port,
    hop.name,
    hop.secure ? "implicit" : hop.tls,
    hop.auth?.user ?? "",
    hop.localAddress ?? "",
    hop.heloName ?? "",
    hop.dane ? "dane" : "",
  ].join("|");
}

export class SmtpSession {
  readonly hop: NextHop;
  readonly key: string;
  readonly remote: string;
  readonly #connection: SMTPConnection;
  #alive = true;
  #ended = false;
  #recipientDsn: ReadonlyMap<string, RecipientDsn> | undefined;
  /** The certificate matched the hop's DNSSEC-secure TLSA records. */
  #daneVerified = false;
  messages = 0;

  private constructor(hop: NextHop, connection: SMTPConnection) {
    this.hop = hop;
    this.key = sessionKey(hop);
    this.remote = describeHost(hop.name, hop.address, hop.port);
    this.#connection = connection;
    const dead = () => {
      this.#alive = false;
    };
    connection.once("end", () => {
      this.#ended = true;
    });
    connection.on("end", dead);
    connection.on("error", dead);
  }

  /** Connects, says EHLO, negotiates TLS as the hop demands, and logs in when it has credentials. */
  static async open(
    hop: NextHop,
    settings: SessionSettings,
    options: { plaintext?: boolean } = {},
  ): Promise<SmtpSession> {
    const remote = describeHost(hop.name, hop.address, hop.port);
    const level: TlsLevel = hop.dane ? strictestTls(hop.tls, "encrypt") : options.plaintext ? "none" : hop.tls;
    const verify = level === "verify";
    const servername = hop.name !== hop.address ? hop.name : undefined;
    const connection = new SMTPConnection({
      host: hop.address,
      port: hop.port,
      secure: hop.secure,
      ...(servername ? { servername } : {}),
      // A source pool's address and name for this route or sender domain, else the defaults.
      name: hop.heloName ?? settings.heloName,
      ...(hop.localAddress ? { localAddress: hop.localAddress } : {}),
      ignoreTLS: level === "none",
      requireTLS: tlsRequired(level),
      opportunisticTLS: level === "opportunistic",
      connectionTimeout: settings.connectTimeoutMs,
      greetingTimeout: settings.greetingTimeoutMs,
      socketTimeout: settings.socketTimeoutMs,
      logger: false,
      tls: {
        rejectUnauthorized: verify,
        ...(verify && settings.ca ? { ca: settings.ca } : {}),
        // Any protocol the peer speaks is better than plaintext, except when the peer must be verified.
        ...(verify ? {} : { minVersion: "TLSv1" as const }),
      },
    });
    const session = new SmtpSession(hop, connection);
    // nodemailer gives every RCPT TO of a transaction the same NOTIFY and ORCPT; RFC 3461 wants
    // each recipient's own (ORCPT names the address each one came from), in one transaction.
    const internals = connection as unknown as ConnectionInternals;
    internals._getDsnRcptToArgs = () => {
      if (!internals._supportedExtensions?.includes("DSN")) return "";
      const recipient = internals._recipientQueue?.at(-1);
      const dsn = recipient === undefined ? undefined : session.#recipientDsn?.get(recipient);
      const args = [
        ...(dsn?.notify?.length ? [`NOTIFY=${dsn.notify.join(",").toUpperCase()}`] : []),
        ...(dsn?.orcpt ? [`ORCPT=${encodeXtext(dsn.orcpt)}`] : []),
      ];
      return args.length ? ` ${args.join(" ")}` : "";
    };
    // Errors outside a pending call (e.g. an idle connection dropped) only mark the session dead.
    connection.on("error", () => undefined);
    try {
      await new Promise<void>((resolve, reject) => {
        // Connection failures arrive as 'error' events, not through the connect callback.
        const onError = (error: Error) => reject(error);
        const onEnd = () =>
          reject(Object.assign(new Error("connection closed before the greeting"), { code: "ECONNECTION" }));
        connection.once("error", onError);
        connection.once("end", onEnd);
        connection.connect((error?: Error) => {
          connection.off("error", onError);
          connection.off("end", onEnd);
          if (error) reject(error);
          else resolve();
        });
      });
      if (hop.auth) {
        await new Promise<void>((resolve, reject) => {
          connection.login({ user: hop.auth!.user, pass: hop.auth!.pass }, (error) =>
            error ? reject(error) : resolve(),
          );
        });
      }
    } catch (error) {
      const failure = SmtpSession.#openError(error as NodemailerError, remote, level);
      failure.localAddress = session.localAddress;
      connection.close();
      throw failure;
    }
    if (tlsRequired(level) && !session.secure) {
      const failure = new SessionError(localReply("4.7.10", `${remote} did not encrypt the connection`, remote), true, {
        type: "starttls-not-supported",
      });
      failure.localAddress = session.localAddress;
      session.close();
      throw failure;
    }
    if (hop.dane) {
      const why = daneMismatch(hop.dane, peerChain(session.#socket?.getPeerCertificate(true)));
      if (why) {
        const failure = new SessionError(localReply("4.7.5", `DANE: ${remote}: ${why}`, remote), false, {
          type: "validation-failure",
          code: "tlsa-mismatch",
        });
        failure.localAddress = session.localAddress;
        session.close();
        // A mismatch may be a key rollover in progress: defer, like Postfix, rather than bounce.
        throw failure;
      }
      session.#daneVerified = hop.dane.records.length > 0;
    }
    return session;
  }

  static #openError(error: NodemailerError, remote: string, level: TlsLevel): SessionError {
    const isTls = error.code === "ETLS" || /certificate|TLS|SSL/i.test(error.message);
    if (error.response && error.responseCode) {
      // A refused session is this host's problem, not the message's: the next host is tried and,
      // failing all, the message waits for a retry. Record it as temporary, in the peer's words.
      const said = parseReply(error.response, remote);
      const words = `${said.code} ${said.status} ${said.text}`;
      if (isTls && tlsRequired(level)) {
        return new SessionError(localReply("4.7.10", `${remote} refused STARTTLS: ${words}`, remote), true, {
          type: "starttls-not-supported",
          code: `smtp-${said.code}`,
        });
      }
      if (said.code < 500) return new SessionError(said, false);
      return new SessionError(localReply("4.4.0", `${remote} refused the session: ${words}`, remote), false);
    }
    if (isTls) {
      const reason = error.message.replace(/^Error initiating TLS - /, "");
      return new SessionError(
        localReply("4.7.10", `TLS with ${remote} failed: ${reason}`, remote),
        true,
        certificateFailure(reason),
      );
    }
    if (error.code === "EAUTH") {
      return new SessionError(
        localReply("4.7.8", `authentication at ${remote} failed: ${error.message}`, remote),
        false,
      );
    }
    const reason = (error as { originalCode?: string }).originalCode ?? error.code ?? "error";
    return new SessionError(
      localReply("4.4.1", `connect to ${remote} failed: ${reason} ${error.message}`, remote),
      false,
    );
  }

  get alive(): boolean {
    const socket = this.#socket;
    return this.#alive && !(socket && (socket.destroyed || !socket.writable));
  }

  get #socket(): (TLSSocket & { authorized?: boolean }) | undefined {
    const socket = (this.#connection as unknown as { _socket?: unknown })._socket;
    return socket ? (socket as TLSSocket) : undefined;
  }

  /** The address this end connected from (a TLS report's sending-mta-ip). */
  get localAddress(): string | undefined {
    return (this.#connection as unknown as { _socket?: { localAddress?: string } })._socket?.localAddress;
  }

  /** Why the peer's certificate did not verify (Node's code), when it did not. */
  get authorizationError(): string | undefined {
    const error = (this.#socket as { authorizationError?: unknown } | undefined)?.authorizationError;
    return error === undefined || error === null ? undefined : String(error);
  }

  /** The connection is encrypted (STARTTLS or implicit TLS). */
  get secure(): boolean {
    return Boolean(this.#connection.secure);
  }

  /** The peer was authenticated: its certificate verified (a "verify" session) or matched by DANE. */
  get verified(): boolean {
    return this.secure && (this.#daneVerified || Boolean(this.#socket?.authorized));
  }

  /** ESMTP extensions the peer announced in its (last) EHLO reply, e.g. "DSN", "SMTPUTF8". */
  offers(extension: string): boolean {
    return Boolean((this.#connection as unknown as ConnectionInternals)._supportedExtensions?.includes(extension));
  }

  get tlsProtocol(): string | undefined {
    return this.secure ? (this.#socket?.getProtocol?.() ?? undefined) : undefined;
  }

  send(envelope: SendEnvelope, body: Readable): Promise<SendResult> {
    this.#recipientDsn = envelope.recipientDsn;
    return new Promise<SendResult>((resolve) => {
      this.#connection.send(
        {
          from: envelope.from,
          to: [...envelope.to],
          size: envelope.size,
          use8BitMime: envelope.use8BitMime,
          requireTLSExtensionEnabled: envelope.requireTls,
          ...(envelope.dsn ? { dsn: envelope.dsn } : {}),
        },
        body,
        (error, info) => {
          this.messages++;
          if (!error && info) {
            const rejected = new Map<string, DeliveryReply>();
            for (const refused of (info.rejectedErrors ?? []) as NodemailerError[]) {
              if (refused.recipient) rejected.set(refused.recipient, this.#reply(refused));
            }
            resolve({ kind: "sent", accepted: info.accepted, rejected, reply: parseReply(info.response, this.remote) });
            return;
          }
          // readableDidRead: whether any of the message was consumed (a listener would start the flow).
          resolve(this.#failure(error as NodemailerError, envelope, !body.readableDidRead));
        },
      );
    });
  }

  #reply(error: NodemailerError): DeliveryReply {
    if (error.response) return parseReply(error.response, this.remote);
    return localReply("4.4.2", `${this.remote}: ${error.message}`, this.remote);
  }

  #failure(error: NodemailerError, envelope: SendEnvelope, untouched: boolean): SendResult {
    const rejected = new Map<string, DeliveryReply>();
    for (const refused of error.rejectedErrors ?? []) {
      if (refused.recipient) rejected.set(refused.recipient, this.#reply(refused));
    }
    if (error.code === "EREQUIRETLS") {
      return {
        kind: "failed",
        stage: "REQUIRETLS",
        reply: localReply("5.7.30", `${this.remote} does not offer REQUIRETLS over TLS (RFC 8689)`, this.remote),
        rejected,
        accepted: [],
        untouched: true,
      };
    }
    const command = error.command ?? "";
    const replied = Boolean(error.response && error.responseCode) && error.responseCode !== 421;
    if (replied && command.startsWith("MAIL")) {
      return { kind: "failed", stage: "MAIL", reply: this.#reply(error), rejected, accepted: [], untouched };
    }
    if (replied && command.startsWith("RCPT")) {
      return { kind: "failed", stage: "RCPT", reply: this.#reply(error), rejected, accepted: [], untouched };
    }
    if (replied && (command === "DATA" || error.code === "EMESSAGE")) {
      const accepted = envelope.to.filter((address) => !rejected.has(address));
      return { kind: "failed", stage: "DATA", reply: this.#reply(error), rejected, accepted, untouched };
    }
    // Lost connection, timeout, 421, or an error of ours: the message's fate at the peer is unknown.
    this.#alive = false;
    const reply = error.response
      ? parseReply(error.response, this.remote)
      : localReply("4.4.2", `${this.remote}: ${error.code ?? "error"} ${error.message}`, this.remote);
    const accepted = envelope.to.filter((address) => !rejected.has(address));
    return { kind: "failed", stage: "CONNECTION", reply, rejected, accepted, untouched };
  }

  /** RSET after a refused transaction, so the connection can carry the next message. */
  reset(): Promise<boolean> {
    if (!this.alive) return Promise.resolve(false);
    return new Promise((resolve) => this.#connection.reset((error) => resolve(!error)));
  }

  /**
   * Calls `callback` once, when the socket is closed in both directions, however the session
   * ended (QUIT, the peer hanging up, an error): what a connection limit counts is sockets, and
   * nodemailer reports the end before the peer has seen our side close.
   */
  onceClosed(callback: () => void): void {
    let called = false;
    let fallback: NodeJS.Timeout | undefined;
    const finish = () => {
      if (called) return;
      called = true;
      clearTimeout(fallback);
      callback();
    };
    const watch = () => {
      const socket = this.#socket as (TLSSocket & { closed?: boolean }) | undefined;
      if (!socket || socket.closed) return finish();
      socket.once("close", finish);
      // nodemailer destroys a socket whose peer never closes its side; don't wait past that.
      fallback = setTimeout(finish, 5_000);
      fallback.unref();
    };
    if (this.#ended) watch();
    else this.#connection.once("end", watch);
  }

  close(): void {
    this.#alive = false;
    try {
      this.#connection.quit();
    } catch {
      // already gone
    }
    // quit() waits for the peer to close; don't let a silent peer keep the socket forever.
    const timer = setTimeout(() => this.#connection.close(), 2_000);
    timer.unref();
    this.#connection.once("end", () => clearTimeout(timer));
  }
}
