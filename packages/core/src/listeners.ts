// The listening sockets and the smtp-server instances that serve them. The two are apart so that
// a configuration reload can hand a bound socket to a new generation of handlers: the socket
// stays bound (no refused connections, no port race), new connections go to the new handler, and
// connections the old handler accepted finish there. Certificates are checked before anything
// listens (a bad file is one clear error); smtp-server's options come from the listener's config.
import { type AddressInfo, createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import type { Logger } from "pino";
import type { SMTPServerOptions } from "smtp-server";
import type { ListenerConfig, ServerConfig } from "./config.ts";
import type { DnsResolver } from "./dns.ts";
import { PosternError } from "./errors.ts";
import type { ListeningAddress } from "./hooks.ts";
import type { createProtocol } from "./protocol.ts";
import type { ListenerInfo } from "./session.ts";
import { AdaptedSmtpServer } from "./smtp-adapter.ts";
import { ListenerTls } from "./tls-context.ts";

/** A bound socket; `handler` serves the connections it accepts from now on. */
export interface BoundSocket {
  /** The configured address and the bound port: what a reload matches listeners by (port 0 never matches). */
  readonly key: string;
  readonly server: NetServer;
  readonly info: ListeningAddress;
  handler: AdaptedSmtpServer;
}

/** One listener of one generation: its config, its handler and its certificates. */
export interface ListenerHandler {
  readonly config: ListenerConfig;
  readonly info: ListenerInfo;
  readonly server: AdaptedSmtpServer;
  readonly tls: ListenerTls | undefined;
}

export const listenerName = (listener: ListenerConfig) => listener.name ?? `${listener.address}:${listener.port}`;

function smtpOptions(
  config: ServerConfig,
  listener: ListenerConfig,
  tls: ListenerTls | undefined,
  resolver: DnsResolver,
): SMTPServerOptions {
  return {
    name: config.hostname,
    banner: "Postern",
    logger: false,
    secure: listener.tls === "implicit",
    needsUpgrade: listener.tls === "implicit",
    ...tls?.smtpOptions(),
    disabledCommands: [...(listener.tls === "none" ? ["STARTTLS"] : []), ...(listener.auth === "none" ? ["AUTH"] : [])],
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
  };
}

/** Builds the handlers of every configured listener (certificates loaded first); nothing listens yet. */
export async function createHandlers(
  config: ServerConfig,
  protocol: ReturnType<typeof createProtocol>,
  resolver: DnsResolver,
  logger: Logger,
): Promise<ListenerHandler[]> {
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
  return config.listeners.map((listener, index) => {
    const info: ListenerInfo = {
      name: listenerName(listener),
      address: listener.address,
      port: listener.port,
      tls: listener.tls,
    };
    const tls = tlsContexts[index];
    const server = new AdaptedSmtpServer(
      { ...smtpOptions(config, listener, tls, resolver), ...protocol.callbacksFor(info, listener) },
      {
        ...protocol.adapterFor(info),
        greetingDelayMs: listener.greetingDelayMs,
        authAfterTls: !listener.allowInsecureAuth,
      },
    );
    tls?.attach(server);
    server.on("error", (error: Error) => logger.warn({ err: error, listener: info.name }, "connection error"));
    return { config: listener, info, server, tls };
  });
}

/** Binds one socket whose connections go to `handler` (and to whichever handler replaces it). */
export async function bindSocket(handler: ListenerHandler, index: number, logger: Logger): Promise<BoundSocket> {
  const listener = handler.config;
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) =>
      reject(
        new PosternError(
          "POSTERN_LISTEN_FAILED",
          `listeners.${index}: cannot listen on ${listener.address}:${listener.port}: ${error.code ?? error.message}`,
          { cause: error },
        ),
      );
    server.once("error", onError);
    server.listen(listener.port, listener.address, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const socket: BoundSocket = {
    key: `${listener.address}:${bound.port}`,
    server,
    info: { ...handler.info, port: bound.port },
    handler: handler.server,
  };
  // smtp-server's own net.Server never listens: it is handed the connections (its 'connection'
  // listener does the PROXY header, the implicit TLS handshake and the session).
  server.on("connection", (connection: Socket) => socket.handler.server.emit("connection", connection));
  server.on("error", (error: Error) => logger.error({ err: error, listener: handler.info.name }, "listener error"));
  logger.info(
    { listener: handler.info.name, address: bound.address, port: bound.port, tls: listener.tls },
    "listening",
  );
  return socket;
}

/** Stops accepting on the sockets; resolves once every connection they accepted has closed. */
export function closeSockets(sockets: readonly BoundSocket[]): Promise<void> {
  return Promise.all(sockets.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve())))).then(
    () => undefined,
  );
}
