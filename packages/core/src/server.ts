// The Postern server: one smtp-server per listener, all sharing one hook runner. This module wires
// smtp-server's callbacks to hooks and applies the defaults of the contract: no route → 550 5.7.1
// (no open relay), nobody stored the message → 451 4.3.0, a failing hook → 4xx.
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerDataStream,
  SMTPServerOptions,
  SMTPServerSession,
} from "smtp-server";
import { type ListenerConfig, parseServerConfig, type ServerConfig, type ServerConfigInput } from "./config.ts";
import { createResolver, type DnsResolver } from "./dns.ts";
import { PosternError } from "./errors.ts";
import { HookRunner } from "./hook-runner.ts";
import type { HookName, ServerContext } from "./hooks.ts";
import { createLogger } from "./logger.ts";
import { newQueueId } from "./queue-id.ts";
import { receivedHeader } from "./received.ts";
import { defaultReplies, replyError, replyFor, type SmtpReply } from "./reply.ts";
import { Results } from "./result-key.ts";
import type { Address, ListenerInfo, Recipient, RouteGroup, Session, TlsInfo, Transaction } from "./session.ts";
import { AdaptedSmtpServer, type SMTPConnection } from "./smtp-adapter.ts";
import { type SpoolOutcome, type SpoolProblem, spoolMessage } from "./spool.ts";
import { clientCertificateOf, ListenerTls } from "./tls-context.ts";
import { startTlsReload, type TlsReloader } from "./tls-reload.ts";
import type { Verdict } from "./verdict.ts";

export interface CreateServerOptions {
  /** Use this logger instead of one built from `config.log`. */
  logger?: Logger;
  /** Use this resolver instead of one built from `config.dns`. */
  resolver?: DnsResolver;
}

export interface ListeningAddress {
  name: string;
  address: string;
  port: number;
}

export interface PosternServer {
  readonly config: ServerConfig;
  readonly context: ServerContext;
  /** Runs plugin setup, then opens every listener. */
  start(): Promise<void>;
  /** Stops accepting, lets transactions in flight finish (bounded), closes plugins. */
  stop(): Promise<void>;
  /** Reads the TLS certificates again (as SIGHUP does); new connections get them, open ones keep theirs. */
  reloadTls(): Promise<void>;
  addresses(): ListeningAddress[];
  /** Plugin names per hook in the order they run. */
  hookOrder(): Record<HookName, string[]>;
}

class SessionState implements Session {
  readonly results = new Results();
  readonly connectedAt = new Date();
  heloName: string | undefined;
  greeting: "EHLO" | "HELO" | undefined;
  tls: TlsInfo | undefined;
  user: string | undefined;
  authFailures = 0;
  transactionCount = 0;
  transaction: TransactionState | undefined;
  connection: SMTPConnection | undefined;
  readonly listener: ListenerInfo;
  readonly #smtp: SMTPServerSession;

  constructor(smtp: SMTPServerSession, listener: ListenerInfo) {
    this.#smtp = smtp;
    this.listener = listener;
  }
  get id() {
    return this.#smtp.id;
  }
  get remoteAddress() {
    return this.#smtp.remoteAddress;
  }
  get remotePort() {
    return this.#smtp.remotePort;
  }
  get localAddress() {
    return this.#smtp.localAddress;
  }
  get localPort() {
    return this.#smtp.localPort;
  }
  get clientHostname() {
    const name = this.#smtp.clientHostname;
    // smtp-server writes "[ip]" when there is no reverse name.
    return name && !name.startsWith("[") ? name : undefined;
  }
}

class TransactionState implements Transaction {
  readonly id = newQueueId();
  readonly results = new Results();
  recipients: Recipient[] = [];
  /** Set once route groups are formed; rerouting after that would split a stored message. */
  queueing = false;
  readonly session: SessionState;
  readonly mailFrom: Address;
  readonly requireTls: boolean;
  readonly bodyType: string;
  readonly smtpUtf8: boolean;
  readonly dsn: Transaction["dsn"];

  constructor(session: SessionState, mailFrom: Address, smtp: SMTPServerSession) {
    this.session = session;
    this.mailFrom = mailFrom;
    this.requireTls = Boolean(smtp.envelope.requireTLS);
    this.bodyType = smtp.envelope.bodyType ?? "7bit";
    this.smtpUtf8 = Boolean(smtp.envelope.smtpUtf8);
    this.dsn = smtp.envelope.dsn ? { ret: smtp.envelope.dsn.ret, envid: smtp.envelope.dsn.envid } : undefined;
  }

  reroute(recipient: Recipient, route: string): void {
    if (this.queueing || !route) return;
    this.recipients = this.recipients.map((current) => (current === recipient ? { ...current, route } : current));
  }
}

const spoolReplies: Record<SpoolProblem, SmtpReply> = {
  size: { code: 552, message: "5.3.4 Message exceeds the maximum message size", close: false },
  "bare-newline": {
    code: 554,
    message: "5.6.0 Bare CR or LF in message; lines must end with CRLF (RFC 5321 2.3.8)",
    close: false,
  },
  "line-length": { code: 554, message: "5.6.0 Message line longer than 998 octets (RFC 5322 2.1.1)", close: false },
};

function toAddress(smtp: SMTPServerAddress): Address {
  const parameters: Record<string, string | true> = {};
  for (const [key, value] of Object.entries(smtp.args || {})) parameters[key.toUpperCase()] = value;
  return { address: smtp.address, parameters };
}

function groupByRoute(recipients: readonly Recipient[]): RouteGroup[] {
  const groups = new Map<string, Recipient[]>();
  for (const recipient of recipients) {
    const group = groups.get(recipient.route) ?? [];
    group.push(recipient);
    groups.set(recipient.route, group);
  }
  return [...groups].map(([route, members]) => ({ route, recipients: members }));
}

export function createServer(input: ServerConfigInput, options: CreateServerOptions = {}): PosternServer {
  const config = parseServerConfig(input);
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const resolver =
    options.resolver ??
    createResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeoutMs, cacheTtlMs: config.dns.cacheTtlMs });
  const context: ServerContext = {
    hostname: config.hostname,
    logger,
    resolver,
    spoolDir: config.spoolDir,
    hookTimeoutMs: config.limits.hookTimeoutMs,
    plugins: config.plugins,
  };
  const hooks = new HookRunner(config.plugins, logger, config.limits.hookTimeoutMs);
  const sessions = new Map<string, SessionState>();
  const listeners: { config: ListenerConfig; info: ListenerInfo; server: AdaptedSmtpServer }[] = [];
  /** Sessions between the end of DATA and the reply: shutdown waits for these. */
  const inFlight = new Set<string>();
  /** close hooks still running; shutdown waits for them before closing plugins. */
  const closing = new Set<Promise<void>>();
  let stopping: Promise<void> | undefined;
  let started = false;
  let tlsReloader: TlsReloader | undefined;

  const logVerdict = (session: Session, hook: string, plugin: string | undefined, reply: SmtpReply, queueId?: string) =>
    logger.info({ session: session.id, queueId, hook, plugin, code: reply.code, reply: reply.message }, "refused");

  /** Runs a verdict hook; returns the refusal reply, or undefined (with the accept verdict, if any). */
  const decide = async <Name extends Exclude<HookName, "close">>(
    hook: Name,
    args: Parameters<HookRunner["first"]>[1] & unknown[],
    session: Session,
    queueId?: string,
  ): Promise<{ reply: SmtpReply | undefined; verdict: Verdict | undefined; plugin: string | undefined }> => {
    const { verdict, plugin } = await hooks.first(hook, args as never, { session: session.id, queueId });
    if (!verdict || verdict.kind === "accept") return { reply: undefined, verdict, plugin };
    const reply = replyFor(verdict);
    logVerdict(session, hook, plugin, reply, queueId);
    return { reply, verdict, plugin };
  };

  const closeAfterReply = (session: SessionState, reply: SmtpReply | undefined) => {
    if (reply?.close) setImmediate(() => session.connection?.close());
  };

  const stateOf = (smtp: SMTPServerSession): SessionState => {
    const state = sessions.get(smtp.id);
    if (!state) throw new Error(`no session state for ${smtp.id}`);
    return state;
  };

  const onData = async (stream: SMTPServerDataStream, smtp: SMTPServerSession): Promise<string> => {
    const session = stateOf(smtp);
    const transaction = session.transaction;
    if (!transaction) throw replyError({ code: 503, message: "5.5.1 Bad sequence of commands", close: false });
    inFlight.add(session.id);
    // Inside the try: a client that goes away mid-DATA makes spoolMessage throw, and its session
    // must still leave inFlight (else shutdown waits shutdownTimeoutMs for a connection long gone).
    let spooled: SpoolOutcome | undefined;
    try {
      spooled = await spoolMessage(stream, {
        maxSize: config.limits.maxMessageSize,
        memoryThreshold: config.limits.memoryThreshold,
        spoolDir: config.spoolDir,
        bareNewlines: config.limits.bareNewlines,
        maxLineLength: config.limits.maxLineLength,
      });
      if (!spooled.ok) {
        const reply = spoolReplies[spooled.problem];
        logVerdict(session, "data", undefined, reply, transaction.id);
        throw replyError(reply);
      }
      const message = spooled.message;
      message.prepend("Received", receivedHeader(config.hostname, transaction));
      const data = await decide("data", [transaction, message], session, transaction.id);
      if (data.reply) {
        closeAfterReply(session, data.reply);
        throw replyError(data.reply);
      }
      // Every route group must be stored by a plugin that made it durable before we say 250.
      transaction.queueing = true;
      for (const group of groupByRoute(transaction.recipients)) {
        const queued = await decide("queue", [transaction, message, group], session, transaction.id);
        if (queued.reply) {
          closeAfterReply(session, queued.reply);
          throw replyError(queued.reply);
        }
        if (!queued.verdict) {
          logVerdict(session, "queue", undefined, defaultReplies.queue, transaction.id);
          throw replyError(defaultReplies.queue);
        }
      }
      session.transactionCount++;
      logger.info(
        {
          session: session.id,
          queueId: transaction.id,
          from: transaction.mailFrom.address,
          recipients: transaction.recipients.length,
          size: message.size,
        },
        "queued",
      );
      return `2.0.0 Ok: queued as ${transaction.id}`;
    } finally {
      await spooled?.discard();
      session.transaction = undefined;
      inFlight.delete(session.id);
    }
  };

  const smtpOptionsFor = (listener: ListenerConfig, tls: ListenerTls | undefined): SMTPServerOptions => {
    const disabledCommands = [
      ...(listener.tls === "none" ? ["STARTTLS"] : []),
      ...(listener.auth === "none" ? ["AUTH"] : []),
    ];
    return {
      name: config.hostname,
      banner: "Postern",
      logger: false,
      secure: listener.tls === "implicit",
      needsUpgrade: listener.tls === "implicit",
      ...tls?.smtpOptions(),
      disabledCommands,
      hideSTARTTLS: listener.tls !== "starttls",
      authOptional: listener.auth !== "required",
      allowInsecureAuth: listener.allowInsecureAuth,
      authMethods: ["PLAIN", "LOGIN"],
      size: config.limits.maxMessageSize,
      maxRecipients: config.limits.maxRecipients,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: false,
      hideREQUIRETLS: false,
      hidePIPELINING: false,
      hide8BITMIME: false,
      hideSMTPUTF8: false,
      useProxy: listener.proxy.length > 0 ? listener.proxy : false,
      maxClients: listener.maxClients,
      socketTimeout: listener.socketTimeoutMs,
      closeTimeout: config.shutdownTimeoutMs,
      resolver: {
        reverse: (ip, callback) =>
          resolver.reverse(ip).then(
            (names) => callback(null, names),
            (error: Error) => callback(error),
          ),
      },

      onConnect(smtp, callback) {
        // The state was created when the connection opened (see `opened` below).
        const session = stateOf(smtp);
        if (stopping) return callback(replyError({ code: 421, message: "4.3.2 Server shutting down", close: true }));
        decide("connect", [session], session).then(
          ({ reply }) => callback(reply ? replyError(reply) : undefined),
          (error: Error) => callback(error),
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
        session.transaction = undefined;
        decide("secure", [session], session).then(
          ({ reply }) => callback(reply ? replyError(reply) : undefined),
          (error: Error) => callback(error),
        );
      },

      onAuth(auth: SMTPServerAuthentication, smtp, callback) {
        const session = stateOf(smtp);
        const credentials = { method: auth.method, username: auth.username ?? "", password: auth.password ?? "" };
        decide("auth", [session, credentials], session).then(({ reply, verdict }) => {
          if (verdict?.kind === "accept") {
            session.user = credentials.username;
            return callback(null, { user: credentials.username });
          }
          const refusal = reply ?? defaultReplies.auth;
          session.authFailures++;
          closeAfterReply(session, refusal);
          callback(replyError(refusal));
        }, callback);
      },

      onMailFrom(address, smtp, callback) {
        const session = stateOf(smtp);
        const transaction = new TransactionState(session, toAddress(address), smtp);
        session.transaction = undefined;
        decide("mailFrom", [transaction, transaction.mailFrom], session, transaction.id).then(({ reply }) => {
          if (reply) {
            closeAfterReply(session, reply);
            return callback(replyError(reply));
          }
          session.transaction = transaction;
          callback();
        }, callback);
      },

      onRcptTo(address, smtp, callback) {
        const session = stateOf(smtp);
        const transaction = session.transaction;
        if (!transaction) return callback(replyError({ code: 503, message: "5.5.1 Need MAIL command", close: false }));
        const candidate = toAddress(address);
        decide("rcptTo", [transaction, candidate], session, transaction.id).then(({ reply, verdict, plugin }) => {
          if (reply) {
            closeAfterReply(session, reply);
            return callback(replyError(reply));
          }
          if (!verdict) {
            logVerdict(session, "rcptTo", undefined, defaultReplies.rcptTo, transaction.id);
            return callback(replyError(defaultReplies.rcptTo));
          }
          if (verdict.kind !== "accept" || !verdict.route) {
            const error = new PosternError(
              "POSTERN_HOOK_BAD_VERDICT",
              `${plugin} accepted a recipient without a route; use accept({ route: "local" }) or another route`,
              { plugin, hook: "rcptTo" },
            );
            logger.error({ session: session.id, queueId: transaction.id, plugin, code: error.code }, error.message);
            return callback(
              replyError({ code: 451, message: "4.3.0 Temporary local problem, try again later", close: false }),
            );
          }
          transaction.recipients.push({ ...candidate, route: verdict.route, dsn: address.dsn });
          callback();
        }, callback);
      },

      onData(stream, smtp, callback) {
        onData(stream, smtp).then(
          (message) => callback(null, message),
          (error: Error & { responseCode?: number }) => {
            if (error.responseCode) return callback(error);
            logger.error({ session: smtp.id, err: error }, "DATA failed");
            callback(
              replyError({ code: 451, message: "4.3.0 Temporary local problem, try again later", close: false }),
            );
          },
        );
      },

      onClose(smtp) {
        const session = sessions.get(smtp.id);
        if (!session) return;
        sessions.delete(smtp.id);
        const done = hooks.all("close", [session], { session: session.id }).catch(() => undefined);
        closing.add(done);
        void done.finally(() => closing.delete(done));
      },
    };
  };

  return {
    config,
    context,

    async start() {
      if (started) throw new Error("server already started");
      started = true;
      for (const plugin of config.plugins) {
        try {
          await plugin.setup?.(context);
        } catch (cause) {
          throw new PosternError(
            "POSTERN_SETUP_FAILED",
            `${plugin.name} failed to set up: ${cause instanceof Error ? cause.message : String(cause)}`,
            { plugin: plugin.name, cause },
          );
        }
      }
      const listenerName = (listener: ListenerConfig) => listener.name ?? `${listener.address}:${listener.port}`;
      // Every certificate is checked before anything listens: a bad file is one clear error.
      const tlsContexts: (ListenerTls | undefined)[] = [];
      for (const listener of config.listeners) {
        tlsContexts.push(
          listener.tls === "none"
            ? undefined
            : await ListenerTls.load({
                listener: listenerName(listener),
                certificates: [{ certificate: listener.certificate!, key: listener.key! }, ...listener.certificates],
                minVersion: listener.minTlsVersion,
                ciphers: listener.ciphers,
                requestClientCertificate: listener.requestClientCertificate,
              }),
        );
      }
      for (const [index, listener] of config.listeners.entries()) {
        const info: ListenerInfo = {
          name: listenerName(listener),
          address: listener.address,
          port: listener.port,
          tls: listener.tls,
        };
        const tls = tlsContexts[index];
        const smtpServer = new AdaptedSmtpServer(smtpOptionsFor(listener, tls), {
          greetingDelayMs: listener.greetingDelayMs,
          authAfterTls: !listener.allowInsecureAuth,
          opened(connection) {
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
              session.transaction = undefined;
            }
            return reply;
          },
        });
        tls?.attach(smtpServer);
        smtpServer.on("error", (error: Error) => logger.warn({ err: error, listener: info.name }, "connection error"));
        await new Promise<void>((resolve, reject) => {
          const onError = (error: NodeJS.ErrnoException) =>
            reject(
              new PosternError(
                "POSTERN_LISTEN_FAILED",
                `listeners.${index}: cannot listen on ${listener.address}:${listener.port}: ${error.code ?? error.message}`,
                { cause: error },
              ),
            );
          smtpServer.server.once("error", onError);
          smtpServer.listen(listener.port, listener.address, () => {
            smtpServer.server.off("error", onError);
            resolve();
          });
        });
        const bound = smtpServer.server.address() as AddressInfo;
        listeners.push({ config: listener, info: { ...info, port: bound.port }, server: smtpServer });
        logger.info({ listener: info.name, address: bound.address, port: bound.port, tls: listener.tls }, "listening");
      }
      const withTls = tlsContexts.filter((tls) => tls !== undefined);
      if (withTls.length > 0) tlsReloader = startTlsReload(withTls, config.tlsReload, logger);
    },

    stop() {
      stopping ??= (async () => {
        logger.info({ inFlight: inFlight.size }, "shutting down");
        tlsReloader?.close();
        const closed = listeners.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())));
        // Sessions not inside DATA are told now. A session inside DATA gets its reply first, then
        // 421 on its next command (smtp-server answers that once closing has begun).
        const closeIdle = () => {
          for (const session of sessions.values()) {
            if (inFlight.has(session.id)) continue;
            session.connection?.send(421, "4.3.2 Server shutting down");
            session.connection?.close();
          }
        };
        closeIdle();
        const deadline = Date.now() + config.shutdownTimeoutMs;
        while (inFlight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
        closeIdle();
        await Promise.all(closed);
        // smtp-server runs onClose a tick after each socket closes; wait (briefly) for every
        // session's close hooks before closing the plugins they use.
        const closeHooksDeadline = Date.now() + 2000;
        while (sessions.size > 0 && Date.now() < closeHooksDeadline) await new Promise((r) => setTimeout(r, 10));
        await Promise.all(closing);
        for (const plugin of [...config.plugins].reverse()) {
          try {
            await plugin.close?.();
          } catch (error) {
            logger.error({ err: error, plugin: plugin.name }, "plugin close failed");
          }
        }
        logger.info("stopped");
      })();
      return stopping;
    },

    async reloadTls() {
      await tlsReloader?.reload();
    },

    addresses() {
      return listeners.map(({ info }) => ({ name: info.name, address: info.address, port: info.port }));
    },

    hookOrder() {
      return hooks.order();
    },
  };
}
