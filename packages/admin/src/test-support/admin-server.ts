// A test server with the admin UI, outbound's filesystem queue (no worker: messages stay queued)
// for relay recipients, local recipients refused unless they are carol@, and the admin plugin.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reject } from "@postern/core";
import outbound from "@postern/outbound";
import { buildMessage, claimRecipients, startTestServer, type TestServer } from "@postern/testing";
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
