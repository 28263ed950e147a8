// The options of lmtp(), validated when the config loads.
import { z } from "zod";

export interface LmtpOptions {
  /** LMTP server host for TCP (e.g. "127.0.0.1"); give host (and port) or socket. */
  host?: string;
  /** TCP port. Default 24 (Dovecot's inet_listener lmtp usually uses 24). */
  port?: number;
  /** Unix socket path instead of TCP, e.g. "/var/run/dovecot/lmtp". */
  socket?: string;
  /** Route groups this plugin takes (see @postern/recipients). Default ["local"]. */
  routes?: string[];
  /** Name sent with LHLO. Default the server's hostname. */
  lhloName?: string;
  /** Time to connect and get the greeting. Default 10 s. */
  connectTimeoutMs?: number;
  /** Longest silence of the LMTP server during a delivery. Default 120 s. */
  socketTimeoutMs?: number;
  /**
   * Sessions kept open to the LMTP server and reused for later messages. Defaults: at most 10
   * open, closed after 10 s idle or 100 messages. `{ maxMessages: 1 }` is one connection per message.
   */
  connections?: { max?: number; idleTimeoutMs?: number; maxMessages?: number };
  /**
   * Remembers recipients already delivered when a message is deferred because of others, so the
   * sender's retry reaches only those (no duplicates). In memory, per node; false turns it off.
   */
  retryMemory?: false | { maxEntries?: number; ttlHours?: number };
}

export const lmtpOptionsSchema = z
  .strictObject({
    host: z.string().min(1).optional(),
    port: z.number({ error: "expected a port number 1–65535" }).int().min(1).max(65535).default(24),
    socket: z.string().min(1).optional(),
    routes: z
      .array(z.string().min(1))
      .min(1, { error: 'expected at least one route, e.g. ["local"]' })
      .default(["local"]),
    lhloName: z.string().min(1).optional(),
    connectTimeoutMs: z.number().int().positive().default(10_000),
    socketTimeoutMs: z.number().int().positive().default(120_000),
    connections: z
      .strictObject({
        max: z.number({ error: "expected the most sessions open at once, e.g. 10" }).int().min(1).default(10),
        idleTimeoutMs: z.number().int().positive().default(10_000),
        maxMessages: z.number().int().min(1).default(100),
      })
      .default({ max: 10, idleTimeoutMs: 10_000, maxMessages: 100 }),
    retryMemory: z
      .union([
        z.literal(false),
        z.strictObject({
          maxEntries: z.number().int().positive().default(100_000),
          ttlHours: z
            .number()
            .positive()
            .default(24 * 7),
        }),
      ])
      .default({ maxEntries: 100_000, ttlHours: 24 * 7 }),
  })
  .superRefine((options, context) => {
    if (!options.host === !options.socket) {
      context.addIssue({
        code: "custom",
        path: [options.host ? "socket" : "host"],
        message: options.host
          ? "expected either host (TCP) or socket (Unix), not both"
          : 'expected host (e.g. "127.0.0.1") or socket (e.g. "/var/run/dovecot/lmtp")',
      });
    }
  });

export type ResolvedLmtpOptions = z.output<typeof lmtpOptionsSchema>;
