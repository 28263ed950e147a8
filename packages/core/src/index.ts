// @postern/core — the public face.

export type { ParsedAddress, Subaddress } from "./address.ts";
export {
  addressKey,
  domainOf,
  isMailboxLocalPart,
  normalizeDomain,
  parseAddress,
  splitSubaddress,
} from "./address.ts";
export type { AuthMethod, AuthResultEntry } from "./auth-results.ts";
export {
  authMethods,
  authResults,
  authResultsOf,
  authResultsValue,
  authservIdOf,
  recordAuthResults,
  removeAuthResultsOf,
  writeAuthenticationResults,
} from "./auth-results.ts";
export type { ListenerConfig, ServerConfig, ServerConfigInput } from "./config.ts";
export { byteSize, defineConfig, listenerSchema, parseServerConfig, serverConfigSchema } from "./config.ts";
export type {
  AuthAttemptedEvent,
  CommandRefusedEvent,
  HookCompletedEvent,
  SessionClosedEvent,
  SessionOpenedEvent,
  SmtpStage,
  SpoolRefusedEvent,
  TlsEstablishedEvent,
  TransactionEndedEvent,
  TransactionOutcome,
} from "./core-events.ts";
export {
  authAttempted,
  commandRefused,
  hookCompleted,
  sessionClosed,
  sessionOpened,
  spoolRefused,
  tlsEstablished,
  transactionEnded,
} from "./core-events.ts";
export { DirectorySync, syncDirectory } from "./directory-sync.ts";
export type { DnsOptions, DnsResolver } from "./dns.ts";
export { createResolver, DnsError } from "./dns.ts";
export type { CoreErrorCode, PosternErrorCode, PosternErrorOptions } from "./errors.ts";
export { ConfigError, isPosternError, PosternError } from "./errors.ts";
export type { EventChannel, EventKey, Observer } from "./events.ts";
export { createEventChannel, eventKey } from "./events.ts";
export type { FileLock, FileLockOptions, FileLockOwner } from "./file-lock.ts";
export { acquireFileLock, FileLockedError } from "./file-lock.ts";
export type { HeaderField, HeaderSegment } from "./headers.ts";
export { formatHeaderField, HeaderList, parseHeaderBlock, parseHeaderSegments } from "./headers.ts";
export type {
  CallBindings,
  HandlerInfo,
  HookAnswer,
  HookInfo,
  HookRegistration,
  HookRunnerOptions,
} from "./hook-runner.ts";
export { HookRunner } from "./hook-runner.ts";
export type {
  AnyHookSet,
  AnySetHandlers,
  Combine,
  HookArguments,
  HookContext,
  HookDeclaration,
  HookDeclarations,
  HookFunction,
  HookOptions,
  HookOrder,
  HookResult,
  HookSet,
  HookSpec,
  HookTable,
  SetHandlers,
} from "./hook-set.ts";
export { defineHookSet } from "./hook-set.ts";
export type {
  HookName,
  HookOutcome,
  HookReturn,
  Hooks,
  ListeningAddress,
  Plugin,
  PluginHooks,
  ServerContext,
  VerdictHookName,
} from "./hooks.ts";
export { definePlugin, refusalOf, smtpHooks } from "./hooks.ts";
export type { IpAddress, IpNetwork } from "./ip.ts";
export { IpNetworkList, networkContains, networkKey, parseIpAddress, parseIpNetwork, reversedName } from "./ip.ts";
export { removeLeftoverFiles, removeOrRetryLater } from "./leftover-files.ts";
export type { Submission, SubmissionOutcome } from "./local-submission.ts";
export { localListener } from "./local-submission.ts";
export type { Logger, LogOptions } from "./logger.ts";
export { createLogger } from "./logger.ts";
export type { BodySource, Message } from "./message.ts";
export type { DurationNumbers } from "./option-values.ts";
export { duration, durationSchema, ipNetworks, parseDuration } from "./option-values.ts";
export { parseOptions } from "./options.ts";
export { newQueueId } from "./queue-id.ts";
export type { CoreReplyName, SmtpReply } from "./reply.ts";
export { coreReplies } from "./reply.ts";
export type { ResultKey } from "./result-key.ts";
export { Results, resultKey } from "./result-key.ts";
export type { CreateServerOptions, PosternServer } from "./server.ts";
export { createServer } from "./server.ts";
export type {
  AddRecipientOutcome,
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
  DiscardVerdict,
  DisconnectVerdict,
  EnhancedStatus,
  Expansion,
  Refusal,
  RejectVerdict,
  Verdict,
} from "./verdict.ts";
export { accept, defer, discard, disconnect, isVerdict, reject } from "./verdict.ts";
