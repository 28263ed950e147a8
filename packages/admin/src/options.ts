import { z } from "zod";

export const adminOptionsSchema = z.strictObject({
  listen: z
    .strictObject({
      address: z.string().min(1).default("127.0.0.1"),
      port: z.number({ error: "expected a port number 0–65535" }).int().min(0).max(65535).default(8025),
    })
    .prefault({}),
  /**
   * A file holding the bearer token (one line; read at setup). Required off loopback. The API takes
   * `Authorization: Bearer <token>`; the web UI asks for it once and keeps it in a cookie.
   */
  tokenFile: z.string().min(1).optional(),
  /** PEM files: the admin listener speaks HTTPS. Required off loopback. */
  tls: z.strictObject({ certificate: z.string().min(1), key: z.string().min(1) }).optional(),
  /** Recent transactions kept for the UI. */
  history: z
    .strictObject({
      /** How many the in-memory ring keeps (per node). */
      size: z.number().int().min(1).max(100_000).default(1000),
      /**
       * Keep them in PostgreSQL instead, so every node's show up on every node's UI. The table is
       * `<schema>.admin_transactions`; rows past `keepDays` are removed hourly.
       */
      postgres: z
        .strictObject({
          connectionString: z.string().min(1),
          schema: z
            .string()
            .regex(/^[a-z_][a-z0-9_]*$/, { error: "expected a lower-case SQL identifier" })
            .default("postern"),
          keepDays: z.number().int().min(1).default(7),
        })
        .optional(),
    })
    .prefault({}),
  /** The name this node's records carry (several nodes sharing PostgreSQL); the server's hostname by default. */
  node: z.string().min(1).optional(),
});

export type AdminOptions = z.input<typeof adminOptionsSchema>;
export type ResolvedAdminOptions = z.output<typeof adminOptionsSchema>;
