// @postern/admin — an admin HTTP API and web UI: the outbound queue (list, show, retry, delete),
// recent transactions with every plugin's verdict and its duration (the answer to "why was this
// refused?"), store-postgres mailboxes and rate-limit counters.

import { readFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { hostname as osHostname } from "node:os";
import { getRequestListener } from "@hono/node-server";
import {
  ConfigError,
  type Plugin,
  PosternError,
  parseOptions,
  type ServerContext,
  sessionClosed,
  sessionOpened,
  transactionEnded,
} from "@postern/core";
import { recorderFor } from "@postern/transaction-log";
import { isLoopback, readToken } from "./access.ts";
import { type AdminSources, createAdminApp } from "./app.ts";
import { type History, MemoryHistory, PostgresHistory } from "./history.ts";
import { type AdminOptions, adminOptionsSchema } from "./options.ts";
import { isQueuePlugin, mailStoresOf, rateLimitCountersOf } from "./sources.ts";
import { type Status, serverVersions } from "./status.ts";

export type { AdminSources } from "./app.ts";
export { createAdminApp } from "./app.ts";
export type { History, HistoryQuery, StoredRecord } from "./history.ts";
export type { AdminOptions } from "./options.ts";
export { adminOptionsSchema } from "./options.ts";
export type { Status, Versions } from "./status.ts";

const pluginName = "@postern/admin";

/** How a client (postern status, postern trace) reaches the admin API of a configured plugin. */
export interface AdminAccess {
  /** The API's base URL: the listen address (a wildcard address as loopback) and port. */
  readonly url: string;
  readonly tokenFile: string | undefined;
  /** The listener's certificate file with TLS: what a client trusts for it. */
  readonly certificate: string | undefined;
}

export interface AdminPlugin extends Plugin {
  readonly name: typeof pluginName;
  readonly access: AdminAccess;
  /** The port the admin listener is bound to, once set up (for `port: 0`). */
  readonly port: number | undefined;
}

type RequestListener = ReturnType<typeof getRequestListener>;

/**
 * The listener and what outlives a configuration reload: the socket, the recent transactions and
 * the counts. A new plugin instance at the same address and port takes it over while the old one
 * still finishes its sessions; the old one closes it only if nobody took it over.
 */
interface Endpoint {
  readonly key: string;
  readonly server: Server;
  readonly history: History;
  readonly startedAt: number;
  readonly transactions: Map<string, number>;
  sessions: number;
  owner: symbol;
  listener: RequestListener;
}

const endpoints = new Map<string, Endpoint>();

async function listen(server: Server, address: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new PosternError(
          "ADMIN_LISTEN_FAILED",
          `${pluginName}: cannot listen on ${address}:${port}: ${error.code ?? error.message}`,
          { plugin: pluginName, cause: error },
        ),
      ),
    );
    server.listen(port, address, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

export default function admin(input: AdminOptions = {}): AdminPlugin {
  const options = parseOptions(adminOptionsSchema, input, pluginName);
  const { address, port } = options.listen;
  const secure = options.tls !== undefined;
  if (!isLoopback(address) && (!options.tls || !options.tokenFile)) {
    throw new ConfigError(
      `${pluginName}.listen.address`,
      `expected a loopback address (127.0.0.1, ::1): off loopback the admin listener needs both tls and tokenFile (it can delete mail); got "${address}"`,
      { plugin: pluginName },
    );
  }
  const owner = Symbol(pluginName);
  let endpoint: Endpoint | undefined;
  const unsubscribe: (() => void)[] = [];
  /** The mail stores and counter readers this instance opened (their pools and clients). */
  let opened: AdminSources | undefined;

  const sourcesFor = async (context: ServerContext, history: History): Promise<AdminSources> => {
    const node = options.node ?? context.hostname;
    const queue = context.plugins.find(isQueuePlugin);
    const [mailStores, rateLimits] = await Promise.all([
      mailStoresOf(context.plugins),
      rateLimitCountersOf(context.plugins),
    ]);
    const status = async (): Promise<Status> => ({
      hostname: context.hostname,
      node,
      pid: process.pid,
      startedAt: endpoint!.startedAt,
      uptimeSeconds: Math.round((Date.now() - endpoint!.startedAt) / 1000),
      listeners: context.listening(),
      sessions: endpoint!.sessions,
      transactions: Object.fromEntries(endpoint!.transactions),
      queue: queue ? await queue.store.stats().catch(() => undefined) : undefined,
      plugins: context.plugins.map((plugin) => plugin.name),
      versions: serverVersions(),
    });
    return { status, history, queue, mailStores, rateLimits, listening: context.listening };
  };

  const host = address === "0.0.0.0" ? "127.0.0.1" : address === "::" ? "::1" : address;
  const plugin: AdminPlugin = {
    name: pluginName,
    access: {
      url: `${secure ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`,
      tokenFile: options.tokenFile,
      certificate: options.tls?.certificate,
    },
    get port() {
      return endpoint && (endpoint.server.address() as AddressInfo | null)?.port;
    },

    async setup(context) {
      const log = context.logger.child({ plugin: pluginName });
      const token = options.tokenFile ? await readToken(options.tokenFile) : undefined;
      const key = `${address}:${port}`;
      const open = async (): Promise<Endpoint> => {
        const server = options.tls
          ? createHttpsServer({ cert: await readFile(options.tls.certificate), key: await readFile(options.tls.key) })
          : createHttpServer();
        let history: History;
        if (options.history.postgres) {
          const pgHistory = new PostgresHistory({
            ...options.history.postgres,
            onError: (error) => log.warn({ err: error }, "recent transactions: PostgreSQL write failed"),
          });
          await pgHistory.open();
          history = pgHistory;
        } else {
          history = new MemoryHistory(options.history.size);
        }
        const bound = await listen(server, address, port).catch(async (error: unknown) => {
          await history.close();
          throw error;
        });
        const opened: Endpoint = {
          key: `${address}:${bound}`,
          server,
          history,
          startedAt: Date.now(),
          transactions: new Map(),
          sessions: 0,
          owner,
          listener: async () => undefined,
        };
        server.on("request", (request, response) => opened.listener(request, response));
        endpoints.set(opened.key, opened);
        return opened;
      };
      const shared: Endpoint = (port === 0 ? undefined : endpoints.get(key)) ?? (await open());
      endpoint = shared;
      shared.owner = owner;
      const sources = await sourcesFor(context, shared.history);
      opened = sources;
      const app = createAdminApp({ token, secure, sources: () => sources });
      shared.listener = getRequestListener(app.fetch);

      const node = options.node ?? context.hostname;
      unsubscribe.push(
        recorderFor(context).subscribe((record) => shared.history.add({ ...record, node })),
        context.events.on(sessionOpened, () => void shared.sessions++),
        context.events.on(sessionClosed, () => void shared.sessions--),
        context.events.on(transactionEnded, ({ outcome }) => {
          shared.transactions.set(outcome, (shared.transactions.get(outcome) ?? 0) + 1);
        }),
      );
      log.info(
        { address, port: plugin.port, tls: secure, token: token !== undefined, hostname: osHostname() },
        "admin listening",
      );
    },

    async close() {
      for (const off of unsubscribe.splice(0)) off();
      const readers = [...(opened?.mailStores ?? []), ...(opened?.rateLimits ?? [])];
      opened = undefined;
      await Promise.all(readers.map((reader) => reader.close().catch(() => undefined)));
      const mine = endpoint;
      if (!mine || mine.owner !== owner) return;
      endpoints.delete(mine.key);
      await new Promise<void>((resolve) => {
        mine.server.close(() => resolve());
        mine.server.closeAllConnections();
      });
      await mine.history.close();
    },
  };
  return plugin satisfies Plugin;
}
