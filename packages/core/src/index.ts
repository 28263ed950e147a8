// @postern/core — the public face.
export { createServer } from "./server.ts";
export type { CreateServerOptions, ListeningAddress, PosternServer } from "./server.ts";
export { defineConfig, parseServerConfig, serverConfigSchema, listenerSchema, byteSize } from "./config.ts";
export type { ListenerConfig, ServerConfig, ServerConfigInput } from "./config.ts";
export { accept, reject, defer, disconnect, isVerdict } from "./verdict.ts";
export type {
  AcceptVerdict,
  DeferVerdict,
  DisconnectVerdict,
  EnhancedStatus,
  RejectVerdict,
  Verdict,
} from "./verdict.ts";
export { definePlugin } from "./hooks.ts";
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
export { resultKey, Results } from "./result-key.ts";
export type { ResultKey } from "./result-key.ts";
export type {
  Address,
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
export type { Message } from "./message.ts";
export { HeaderList, parseHeaderBlock, formatHeaderField } from "./headers.ts";
export type { HeaderField } from "./headers.ts";
export { createResolver, DnsError } from "./dns.ts";
export type { DnsOptions, DnsResolver } from "./dns.ts";
export { createLogger } from "./logger.ts";
export type { Logger, LogOptions } from "./logger.ts";
export { ConfigError, PosternError } from "./errors.ts";
export type { PosternErrorCode } from "./errors.ts";
export { parseOptions } from "./options.ts";
export { newQueueId } from "./queue-id.ts";
