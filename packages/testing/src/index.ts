// @postern/testing — the kit for testing Postern and its plugins over real SMTP.

export type { TestCertificate } from "./certificates.ts";
export { createTestCertificate } from "./certificates.ts";
export type { Daemon } from "./daemon.ts";
export { canConnect, freePort, makeTempDir, startDaemon } from "./daemon.ts";
export { eventually, isReady } from "./eventually.ts";
export type { FakeDns, MxRecord, RecordSet, Zone, ZoneEntry } from "./fake-dns.ts";
export { bindUdpAndTcp, reverseName, startFakeDns } from "./fake-dns.ts";
export type { MessageSpec } from "./message-builder.ts";
export { buildMessage, bulkyText } from "./message-builder.ts";
export type { CapturedMessage, MemoryQueue } from "./plugins.ts";
export { claimRecipients, memoryQueue } from "./plugins.ts";
export type { RedisServer } from "./redis-server.ts";
export { deleteRedisKeys, sharedRedisUrl, startRedisServer, uniqueRedisPrefix } from "./redis-server.ts";
export type { SendError, SendOptions, SendResult } from "./send.ts";
export { sendMail } from "./send.ts";
export type { RawSmtpClient, SmtpReplyLines } from "./smtp-client.ts";
export { connectSmtp } from "./smtp-client.ts";
// The storage conformance checks; `describeStoreConformance` (vitest) is in "@postern/testing/vitest".
export {
  awkwardMessage,
  type ConformanceCheck,
  type ConformanceContext,
  conformanceContext,
  largeMessageStream,
  type StoreConformanceOptions,
  type StoreUnderTest,
  sendStream,
  storeConformanceChecks,
} from "./store-conformance-checks.ts";
export type { LogRecord, TestServer, TestServerOptions } from "./test-server.ts";
export { repeatedTopLevelKeys, runOrder, startTestServer } from "./test-server.ts";
