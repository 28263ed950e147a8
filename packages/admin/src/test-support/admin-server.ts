// Test servers with the admin UI: one with outbound's filesystem queue (no worker: messages stay
// queued) for relay recipients and a policy refusing @blocked.test; one with store-postgres and
// Redis rate limits for the mailboxes and rate-limits pages.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reject } from "@postern/core";
import outbound from "@postern/outbound";
import rateLimit from "@postern/rate-limit";
import storePostgres from "@postern/store-postgres";
import {
  buildMessage,
  claimRecipients,
  deleteRedisKeys,
  sharedRedisUrl,
  startTestServer,
  type TestServer,
  uniqueRedisPrefix,
} from "@postern/testing";
import pg from "pg";
import admin, { type AdminOptions, type AdminPlugin } from "../index.ts";

export interface AdminTestServer {
  readonly server: TestServer;
  readonly admin: AdminPlugin;
  readonly base: string;
  readonly dir: string;
  /** Sends one message the queue keeps, one the policy refuses; returns the queued one's ID. */
  traffic(): Promise<string>;
  stop(): Promise<void>;
}

export const policy = {
  name: "test:policy",
  hooks: {
    rcptTo: (_tx: unknown, rcpt: { address: string }) =>
      rcpt.address.endsWith("@blocked.test") ? reject("5.7.1", "Recipient domain blocked by policy") : undefined,
  },
};

export async function startAdminServer(options: AdminOptions = {}): Promise<AdminTestServer> {
  const dir = await mkdtemp(join(tmpdir(), "postern-admin-"));
  const plugin = admin({ listen: { port: 0 }, ...options });
  const server = await startTestServer({
    plugins: [
      plugin,
      policy,
      claimRecipients({ route: "relay" }),
      outbound({ queue: { type: "fs", dir: join(dir, "queue") }, worker: { enabled: false } }),
    ],
  });
  return {
    server,
    admin: plugin,
    base: `http://127.0.0.1:${plugin.port}`,
    dir,
    async traffic() {
      const sent = await server.send({
        from: "alice@sender.test",
        to: "carol@remote.test",
        raw: buildMessage({ from: "alice@sender.test", to: "carol@remote.test", subject: "hello" }),
      });
      await server
        .send({ from: "mallory@sender.test", to: "bob@blocked.test", raw: buildMessage({ to: "bob@blocked.test" }) })
        .catch(() => undefined);
      return /queued as (\S+)/.exec(sent.response)![1]!;
    },
    async stop() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function tokenFile(dir: string, token: string): Promise<string> {
  const file = join(dir, "admin.token");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return file;
}

export interface StoresTestServer {
  readonly server: TestServer;
  readonly base: string;
  /** Sends a message to alice@example.test (stored in PostgreSQL, counted in Redis); returns its queue ID. */
  traffic(subject: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A server whose mail goes to @postern/store-postgres (the shared PostgreSQL, a schema of its own)
 * and whose messages are counted by @postern/rate-limit in Redis (the shared one, a key prefix of
 * its own): what the mailboxes and rate-limits pages show.
 */
export async function startStoresServer(): Promise<StoresTestServer> {
  const schema = `admin_mail_${process.pid}_${Date.now()}`;
  const connectionString = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const keyPrefix = uniqueRedisPrefix("admin");
  const plugin = admin({ listen: { port: 0 } });
  const server = await startTestServer({
    plugins: [
      plugin,
      rateLimit({ limits: [{ kind: "messages", limit: "1000/1h" }], redis: { url: sharedRedisUrl, keyPrefix } }),
      claimRecipients(),
      storePostgres({ connectionString, schema }),
    ],
  });
  return {
    server,
    base: `http://127.0.0.1:${plugin.port}`,
    async traffic(subject) {
      const sent = await server.send({
        from: "bob@sender.test",
        to: "alice@example.test",
        raw: buildMessage({ from: "bob@sender.test", to: "alice@example.test", subject }),
      });
      return /queued as (\S+)/.exec(sent.response)![1]!;
    },
    async stop() {
      await server.stop();
      await deleteRedisKeys(keyPrefix);
      const client = new pg.Client({ connectionString });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
}
