// Everything Postern needs from smtp-server beyond its public options lives here, so an upgrade
// touches one file (pinned to smtp-server 3.21; protocol.test.ts and hooks.test.ts pin the behaviour):
// - the pre-greeting delay is per listener instead of a fixed 100 ms (it capped throughput at
//   ~200 msg/s for 20 clients with one message per connection);
// - HELO/EHLO run the `helo` hook before smtp-server answers (it has no onHelo callback);
// - replies whose text starts with an enhanced status code keep it, instead of smtp-server
//   prefixing a second one derived from the basic code;
// - AUTH is advertised only once TLS is up (unless the listener allows AUTH in clear), and AUTH
//   tried before TLS is answered 538 5.7.11 as RFC 4954 §6 says (smtp-server sends 5.7.0);
// - a MAIL/RCPT parameter without a keyword ("=x") or with "=" and no value is answered
//   501 5.5.4: smtp-server drops the first silently and takes the second for a bare keyword, and
//   hands core only what it parsed.
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";
import { coreReplies, type SmtpReply, tooManyClients } from "./reply.ts";

export interface ConnectionAdapter {
  greetingDelayMs: number;
  /** Leave AUTH out of the EHLO reply until the connection is encrypted. */
  authAfterTls: boolean;
  /** Runs the helo hook; a reply refuses the greeting. */
  helo(session: SMTPServerSession, name: string, command: "EHLO" | "HELO"): Promise<SmtpReply | undefined>;
  opened(connection: SMTPConnection): void;
}

const enhancedStatusPrefix = /^[245]\.\d{1,3}\.\d{1,3} /;
// The same check smtp-server applies before answering; names it would refuse never reach the hook.
const plausibleHeloName = /^[\x21-\x7e]{1,255}$/;

type SocketOptions = Parameters<SMTPServer["connect"]>[1];

/**
 * Whether a MAIL FROM / RCPT TO line has a parameter RFC 5321 §4.1.2 (esmtp-param = esmtp-keyword
 * ["=" esmtp-value], both at least one character) does not allow and smtp-server lets by: one
 * with no keyword, or "=" with no value. Split as smtp-server splits it; a line whose path it
 * refuses is left to it.
 */
export function hasMalformedParameter(line: string): boolean {
  const colon = line.indexOf(":");
  if (colon === -1) return false;
  const [path, ...parameters] = line
    .slice(colon + 1)
    .trim()
    .split(/\s+/);
  if (!path || !/^<[^<>]*>$/.test(path)) return false;
  return parameters.some((parameter) => parameter.startsWith("=") || /^[^=]+=$/.test(parameter));
}

interface ServerInternals {
  _onError(error: Error): void;
  _onClientConnect(data: unknown): void;
}

/**
 * smtp-server's connection with Postern's changes as overriding methods: one prototype for every
 * connection, so opening one costs no closures (they cost ~13 µs a connection as own properties).
 */
class AdaptedConnection extends SMTPConnection {
  readonly #adapter: ConnectionAdapter;

  constructor(server: SMTPServer, socket: Socket | TLSSocket, options: SocketOptions, adapter: ConnectionAdapter) {
    super(server, socket, options);
    this.#adapter = adapter;
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (code === 538 && typeof data === "string" && !enhancedStatusPrefix.test(data)) {
      data = coreReplies.encryptionRequired.message;
    }
    if (code === 250 && Array.isArray(data) && this.#adapter.authAfterTls && !this.secure) {
      data = data.filter((line) => !line.startsWith("AUTH "));
    }
    const keepsOwn = typeof data === "string" && enhancedStatusPrefix.test(data);
    super.send(code, data, keepsOwn ? false : context);
  }

  override init(): void {
    this._setListeners(() => {
      const options = this._server.options;
      if (options.maxClients && this._server.connections.size > options.maxClients) {
        const full = tooManyClients(this.name);
        return this.send(full.code, full.message);
      }
      const delay = this.#adapter.greetingDelayMs;
      if (delay > 0) setTimeout(() => this.connectionReady(), delay).unref();
      else this.connectionReady();
    });
  }

  override handler_MAIL(line: Buffer, callback: () => void): void {
    if (!this.#refusedParameters(line, callback)) super.handler_MAIL(line, callback);
  }

  override handler_RCPT(line: Buffer, callback: () => void): void {
    if (!this.#refusedParameters(line, callback)) super.handler_RCPT(line, callback);
  }

  #refusedParameters(line: Buffer, callback: () => void): boolean {
    if (!hasMalformedParameter(line.toString())) return false;
    this.send(coreReplies.badParameterSyntax.code, coreReplies.badParameterSyntax.message);
    callback();
    return true;
  }

  override handler_EHLO(line: Buffer, callback: () => void): void {
    this.#heloWithHook("EHLO", line, callback, () => super.handler_EHLO(line, callback));
  }

  override handler_HELO(line: Buffer, callback: () => void): void {
    this.#heloWithHook("HELO", line, callback, () => super.handler_HELO(line, callback));
  }

  #heloWithHook(command: "EHLO" | "HELO", line: Buffer, callback: () => void, answer: () => void): void {
    const parts = line.toString().trim().split(/\s+/);
    const name = parts[1] ?? "";
    if (parts.length !== 2 || !plausibleHeloName.test(name)) {
      answer();
      return;
    }
    this.#adapter.helo(this.session, name, command).then(
      (reply) => {
        if (!reply) {
          answer();
          return;
        }
        this.send(reply.code, reply.message);
        if (reply.close) this.close();
        callback();
      },
      () => {
        this.send(coreReplies.hookFailed.code, coreReplies.hookFailed.message);
        callback();
      },
    );
  }
}

export class AdaptedSmtpServer extends SMTPServer {
  readonly #adapter: ConnectionAdapter;

  constructor(options: SMTPServerOptions, adapter: ConnectionAdapter) {
    super(options);
    this.#adapter = adapter;
  }

  override connect(socket: Socket | TLSSocket, socketOptions?: SocketOptions): void {
    const internals = this as unknown as ServerInternals;
    const connection = new AdaptedConnection(this, socket, socketOptions, this.#adapter);
    this.connections.add(connection);
    connection.on("error", (error: Error) => internals._onError(error));
    connection.on("connect", (data: unknown) => internals._onClientConnect(data));
    this.#adapter.opened(connection);
    connection.init();
  }
}

export type { SMTPConnection };
