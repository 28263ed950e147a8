// @postern/core — the public face.

export type { ListenerConfig, ServerConfig, ServerConfigInput } from "./config.ts";
export { byteSize, defineConfig, listenerSchema, parseServerConfig, serverConfigSchema } from "./config.ts";
export type { DnsOptions, DnsResolver } from "./dns.ts";
export { createResolver, DnsError } from "./dns.ts";
export type { PosternErrorCode } from "./errors.ts";
export { ConfigError, PosternError } from "./errors.ts";
export type { HeaderField } from "./headers.ts";
export { formatHeaderField, HeaderList, parseHeaderBlock } from "./headers.ts";
export type {
  HookContext,
  HookDeclaration,
  HookName,
  HookOptions,
  HookOrder,
  HookOutcome,
  HookReturn,
  Hooks,
  Plugin,
  PluginHooks,
  ServerContext,
  VerdictHookName,
} from "./hooks.ts";
export { definePlugin } from "./hooks.ts";
export type { Logger, LogOptions } from "./logger.ts";
export { createLogger } from "./logger.ts";
export type { Message } from "./message.ts";
export { parseOptions } from "./options.ts";
export { newQueueId } from "./queue-id.ts";
export type { ResultKey } from "./result-key.ts";
export { Results, resultKey } from "./result-key.ts";
export type { CreateServerOptions, ListeningAddress, PosternServer } from "./server.ts";
export { createServer } from "./server.ts";
export type {
  Address,
  ClientCertificate,
  Credentials,
  EsmtpParameters,
  ListenerInfo,
  ListenerTls,
  Recipient,
  RouteGroup,
  Session,
  TlsInfo,
  Transaction,
} from "./session.ts";
export type {
  AcceptVerdict,
  DeferVerdict,
  DisconnectVerdict,
  EnhancedStatus,
  RejectVerdict,
  Verdict,
} from "./verdict.ts";
export { accept, defer, disconnect, isVerdict, reject } from "./verdict.ts";
export type { FileLock, FileLockOptions } from "./file-lock.ts";
export { acquireFileLock } from "./file-lock.ts";
