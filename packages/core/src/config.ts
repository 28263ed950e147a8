// The server's configuration: its schema (validated before anything listens), its defaults, and
// `defineConfig` for typed postern.config.ts files.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import type { Plugin } from "./hooks.ts";
import { parseOptions } from "./options.ts";

const port = z.number({ error: "expected a port number 1–65535" }).int().min(1).max(65535);

/** Sizes as a number of bytes or a string such as "25MB", "512KB". */
const sizeExpected = 'expected a size such as 26214400, "25MB" or "512KB"';

export const byteSize = z.union(
  [
    z.number({ error: sizeExpected }).int({ error: sizeExpected }).positive({ error: sizeExpected }),
    z
      .string()
      .regex(/^\s*\d+(\.\d+)?\s*(B|KB|K|MB|M|GB|G)?\s*$/i, {
        error: sizeExpected,
      })
      .transform((text) => {
        const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Z]*)\s*$/i.exec(text)!;
        const unit = (match[2] ?? "").toUpperCase().replace(/B$/, "");
        const factor = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[unit] ?? 1;
        return Math.round(Number(match[1]) * factor);
      }),
  ],
  // One message for the union: zod's own would be "Invalid input".
  { error: sizeExpected },
);

export const listenerSchema = z
  .strictObject({
    name: z.string().min(1).optional(),
    address: z.string().default("127.0.0.1"),
    port,
    tls: z.enum(["none", "starttls", "implicit"]).default("none"),
    /** PEM files; required for starttls and implicit. The default certificate. */
    certificate: z.string().optional(),
    key: z.string().optional(),
    /** More certificates, each served to clients asking (SNI) for a name it covers. */
    certificates: z.array(z.strictObject({ certificate: z.string().min(1), key: z.string().min(1) })).default([]),
    /** Lowest TLS version accepted; TLS 1.0 and 1.1 are never accepted (RFC 8996). */
    minTlsVersion: z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2"),
    /** OpenSSL cipher list (TLS 1.2 ciphers, TLS 1.3 suites); default: AEAD with forward secrecy, no CBC. */
    ciphers: z.string().min(1).optional(),
    /** Ask clients for a certificate: recorded in session.tls, never required. */
    requestClientCertificate: z.boolean().default(false),
    /** "none": AUTH not offered (MX); "optional"; "required": AUTH before MAIL (submission). */
    auth: z.enum(["none", "optional", "required"]).default("none"),
    /** Allow AUTH without TLS (only for tests and loopback). */
    allowInsecureAuth: z.boolean().default(false),
    /** Wait before the greeting to catch early talkers; 0 for submission and trusted peers. */
    greetingDelayMs: z.number().int().min(0).max(60_000).default(0),
    /** Peers allowed to send a PROXY protocol header (e.g. the load balancer). */
    proxy: z.array(z.string()).default([]),
    maxClients: z.number().int().positive().optional(),
    /** Idle timeout of a session. */
    socketTimeoutMs: z.number().int().positive().default(300_000),
    /**
     * The longest a session may last, whatever it sends (the idle timer restarts on every byte, so
     * a client sending one byte a second would never time out): 421 4.4.2 and close past it.
     */
    sessionTimeoutMs: z.number().int().positive().default(1_800_000),
    /** Bytes per second a client must keep up during DATA once `dataGraceMs` passed: 421 4.4.2 below it. */
    minDataRate: z.number().int().min(0).default(500),
    dataGraceMs: z.number().int().min(0).default(10_000),
  })
  .superRefine((listener, context) => {
    if (listener.tls !== "none" && (!listener.certificate || !listener.key)) {
      context.addIssue({
        code: "custom",
        path: [listener.certificate ? "key" : "certificate"],
        message: `expected a PEM file path: tls "${listener.tls}" needs a certificate and a key`,
      });
    }
    if (listener.tls === "none" && listener.certificates.length > 0) {
      context.addIssue({
        code: "custom",
        path: ["certificates"],
        message: 'expected tls "starttls" or "implicit" to use certificates',
      });
    }
    if (listener.tls === "none" && listener.auth !== "none" && !listener.allowInsecureAuth) {
      context.addIssue({
        code: "custom",
        path: ["auth"],
        message:
          'AUTH without TLS sends passwords in clear: expected tls "starttls" or "implicit" (or allowInsecureAuth: true, for tests and loopback only)',
      });
    }
  });

const pluginShape = z.custom<Plugin>(
  (value) =>
    typeof value === "object" &&
    value !== null &&
    typeof (value as Plugin).name === "string" &&
    (value as Plugin).name !== "" &&
    ["object", "undefined"].includes(typeof (value as Plugin).hooks),
  { error: "expected a plugin object { name, hooks } (call the plugin's factory, e.g. spf())" },
);

export const serverConfigSchema = z.strictObject({
  hostname: z.string().min(1).default("localhost"),
  /**
   * The authserv-id of our Authentication-Results fields (RFC 8601 §2.5); the hostname when unset.
   * Incoming fields that claim it are removed from every message before any plugin runs.
   */
  authservId: z.string().min(1).optional(),
  /** The route quarantined messages are stored under (transaction.quarantine()). */
  quarantineRoute: z.string().min(1).default("quarantine"),
  listeners: z
    .array(listenerSchema)
    .min(1)
    .prefault([{ port: 2525 }]),
  limits: z
    .strictObject({
      maxMessageSize: byteSize.default(25 * 1024 * 1024),
      maxRecipients: z.number().int().positive().default(100),
      /** Messages up to this size stay in memory; larger ones are spooled to disk. */
      memoryThreshold: byteSize.default(256 * 1024),
      maxLineLength: z.number().int().min(78).default(998),
      /** "reject" refuses bare CR / bare LF (SMTP smuggling); "normalize" rewrites them as CRLF. */
      bareNewlines: z.enum(["reject", "normalize"]).default("reject"),
      hookTimeoutMs: z.number().int().positive().default(30_000),
      /**
       * More Received fields than this is a mail loop: refused with 554 5.4.6 at end of DATA
       * (RFC 5321 §6.3 suggests about 100).
       */
      maxReceived: z.number().int().min(1).default(100),
      /** The most addresses one recipient may expand to (aliases, lists): 550 5.5.3 past it. */
      maxExpansion: z.number().int().min(1).default(1000),
      /**
       * What the route groups of a transaction answered 451 after some were stored: the retry
       * stores only the rest (route-memory.ts). Bounded in recipients and time; maxEntries 0 turns
       * it off.
       */
      routeMemory: z
        .strictObject({
          maxEntries: z.number().int().min(0).default(10_000),
          ttlMs: z
            .number()
            .int()
            .positive()
            .default(24 * 60 * 60 * 1000),
        })
        .prefault({}),
    })
    .prefault({}),
  dns: z
    .strictObject({
      servers: z.array(z.string()).default([]),
      timeoutMs: z.number().int().positive().default(5000),
      cacheTtlMs: z.number().int().min(0).default(60_000),
    })
    .prefault({}),
  log: z
    .strictObject({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info") })
    .prefault({}),
  spoolDir: z.string().default(join(tmpdir(), "postern-spool")),
  /** Certificates are reloaded without a restart: on SIGHUP, and when their files change. */
  tlsReload: z
    .strictObject({
      onSighup: z.boolean().default(true),
      watchFiles: z.boolean().default(true),
      /** Wait after a file change before reloading (a renewal writes key and certificate separately). */
      delayMs: z.number().int().min(0).max(60_000).default(1000),
    })
    .prefault({}),
  /** How long shutdown waits for transactions in flight before answering 421. */
  shutdownTimeoutMs: z.number().int().min(0).default(30_000),
  plugins: z.array(pluginShape).default([]),
});

export type ServerConfigInput = z.input<typeof serverConfigSchema>;
export type ServerConfig = z.output<typeof serverConfigSchema>;
export type ListenerConfig = z.output<typeof listenerSchema>;

/** Typed identity for postern.config.ts: `export default defineConfig({ ... })`. */
export function defineConfig(config: ServerConfigInput): ServerConfigInput {
  return config;
}

export function parseServerConfig(input: unknown): ServerConfig {
  return parseOptions(serverConfigSchema, input);
}
