// Opens one smtp-server per listener: certificates checked before anything listens (a bad file is
// one clear error), smtp-server's options from the listener's config, bound in config order.
import type { AddressInfo } from "node:net";
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

export interface OpenListener {
  readonly config: ListenerConfig;
  readonly info: ListeningAddress;
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

export async function openListeners(
  config: ServerConfig,
  protocol: ReturnType<typeof createProtocol>,
  resolver: DnsResolver,
  logger: Logger,
): Promise<OpenListener[]> {
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
  const open: OpenListener[] = [];
  try {
    for (const [index, listener] of config.listeners.entries()) {
      const info: ListenerInfo = { name: listenerName(listener), address: listener.address, port: listener.port, tls: listener.tls };
      const tls = tlsContexts[index];
      const server = new AdaptedSmtpServer(
        { ...smtpOptions(config, listener, tls, resolver), ...protocol.callbacksFor(info, listener) },
        { ...protocol.adapterFor(info), greetingDelayMs: listener.greetingDelayMs, authAfterTls: !listener.allowInsecureAuth },
      );
      tls?.attach(server);
      server.on("error", (error: Error) => logger.warn({ err: error, listener: info.name }, "connection error"));
      await new Promise<void>((resolve, reject) => {
        const onError = (error: NodeJS.ErrnoException) =>
          reject(
            new PosternError(
              "POSTERN_LISTEN_FAILED",
              `listeners.${index}: cannot listen on ${listener.address}:${listener.port}: ${error.code ?? error.message}`,
              { cause: error },
            ),
          );
        server.server.once("error", onError);
        server.listen(listener.port, listener.address, () => {
          server.server.off("error", onError);
          resolve();
        });
      });
      const bound = server.server.address() as AddressInfo;
      open.push({ config: listener, info: { ...info, port: bound.port }, server, tls });
      logger.info({ listener: info.name, address: bound.address, port: bound.port, tls: listener.tls }, "listening");
    }
  } catch (error) {
    // What did bind must not stay bound behind a failed start.
    await Promise.all(open.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
    throw error;
  }
  return open;
}
