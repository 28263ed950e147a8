// @postern/store-postgres — message storage in PostgreSQL, shared by every Postern node. Takes the
// route groups named in `routes` in the queue hook and answers accept() only once the transaction
// holding the message, its bytes and one delivery row per recipient has committed.
import { accept, ConfigError, defer, type Plugin, parseOptions } from "@postern/core";
import pg from "pg";
import { withClient } from "./checkout.ts";
import { openPostgresMailStore, type PostgresMailStore, sweepOnce } from "./mail-store.ts";
import { defaultMailbox } from "./mailbox-name.ts";
import { migrate } from "./migrations.ts";
import { connectionStringExpected, type PostgresStoreOptions, postgresStoreOptionsSchema } from "./options.ts";
import { quoteIdentifier } from "./sql.ts";
import { writeMessage } from "./write.ts";

export type { ListOptions, MailStoreOptions, PostgresMailStore, StoredMessage } from "./mail-store.ts";
export { openPostgresMailStore } from "./mail-store.ts";
export { defaultMailbox } from "./mailbox-name.ts";
export { migrations } from "./migrations.ts";
export type { PostgresStoreOptions } from "./options.ts";

const pluginName = "@postern/store-postgres";

/** The plugin, plus the pool it opened in setup (for the application's own queries). */
export interface PostgresStorePlugin extends Plugin {
  /** The node's pool once setup() ran. */
  readonly pool: pg.Pool | undefined;
  /** Resolves while the database answers (what /readyz of @postern/metrics asks). */
  ready(): Promise<void>;
}

export default function storePostgres(options: PostgresStoreOptions = {}): PostgresStorePlugin {
  const resolved = parseOptions(postgresStoreOptionsSchema, options, pluginName);
  const connectionString = resolved.connectionString ?? process.env.DATABASE_URL;
  if (!connectionString)
    throw new ConfigError(`${pluginName}.connectionString`, connectionStringExpected, { plugin: pluginName });
  const routes = new Set(resolved.routes);
  const schema = quoteIdentifier(resolved.schema);
  const mailboxOf = resolved.mailbox ?? defaultMailbox;
  let pool: pg.Pool | undefined;
  let hostname = "localhost";
  let sweeper: NodeJS.Timeout | undefined;

  const plugin = {
    name: pluginName,
    get pool() {
      return pool;
    },

    async setup(server) {
      hostname = server.hostname;
      const log = server.logger.child({ plugin: pluginName });
      pool = new pg.Pool({
        connectionString,
        max: resolved.maxConnections,
        connectionTimeoutMillis: resolved.connectionTimeoutMs,
        application_name: resolved.applicationName,
      });
      // A pooled connection that dies while idle (server restart, pg_terminate_backend) is reported
      // here; unhandled, it would crash the process. The pool replaces it on the next checkout.
      pool.on("error", (error) => log.warn({ err: error }, "idle PostgreSQL connection lost"));
      // Fail fast: an unreachable database or a failed migration stops the server from starting.
      const applied = await withClient(pool, (client) => migrate(client, resolved.schema));
      if (applied.length > 0) log.info({ schema: resolved.schema, applied }, "PostgreSQL schema migrated");
      if (resolved.retention) {
        const { days, intervalMinutes } = resolved.retention;
        const sweep = () => {
          if (!pool) return;
          sweepOnce(pool, resolved.schema, days).then(
            (deleted) => {
              if (deleted) log.info({ deleted, days }, "retention: deleted old messages");
            },
            (error: unknown) => log.warn({ err: error }, "retention sweep failed; will try again"),
          );
        };
        sweeper = setInterval(sweep, intervalMinutes * 60_000);
        sweeper.unref();
        setImmediate(sweep);
      }
    },

    /** Readiness (e.g. @postern/metrics' /readyz): resolves while the database answers. */
    async ready() {
      if (!pool) throw new Error("not set up");
      await pool.query("SELECT 1");
    },

    async close() {
      if (sweeper) clearInterval(sweeper);
      sweeper = undefined;
      const closing = pool;
      pool = undefined;
      await closing?.end();
    },

    hooks: {
      async queue(transaction, message, group, { signal, log }) {
        if (!routes.has(group.route)) return undefined;
        if (!pool) return defer("4.3.0", "Storage not ready, try again later");
        try {
          const written = await withClient(pool, (client) =>
            writeMessage(client, {
              schema,
              chunkSize: resolved.chunkSize,
              hostname,
              transaction,
              message,
              group,
              mailboxOf,
              signal,
            }),
          );
          log.info(
            { messageId: written.messageId, size: written.size, deliveries: written.deliveries },
            "stored in PostgreSQL",
          );
          return accept();
        } catch (error) {
          log.error(
            { err: error, code: (error as { code?: string }).code },
            "PostgreSQL delivery failed; nothing stored",
          );
          return defer("4.3.0", "Storage temporarily unavailable, try again later");
        }
      },
    },
  } satisfies PostgresStorePlugin;
  settingsOf.set(plugin, { connectionString, schema: resolved.schema });
  return plugin;
}

/** Where each plugin made by storePostgres() stores, for tools that find it in a loaded config. */
const settingsOf = new WeakMap<Plugin, { connectionString: string; schema: string }>();

/**
 * The read API on the database and schema of a configured plugin — how `postern mailbox` reads
 * the store named in postern.config.ts. Undefined for a plugin not made by storePostgres().
 */
export function openPostgresMailStoreFor(plugin: Plugin): PostgresMailStore | undefined {
  const settings = settingsOf.get(plugin);
  return settings && openPostgresMailStore(settings);
}
