import { createServer as createNetServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  claimRecipients,
  connectSmtp,
  memoryQueue,
  type RawSmtpClient,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";
import { sessionOpened } from "./core-events.ts";
import { ConfigError } from "./errors.ts";
import type { Plugin } from "./hooks.ts";
import { reject } from "./verdict.ts";

let server: TestServer | undefined;
const clients: RawSmtpClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.stop();
  server = undefined;
});

async function client(port: number): Promise<RawSmtpClient> {
  const connected = await connectSmtp(port);
  clients.push(connected);
  expect((await connected.read()).code).toBe(220);
  expect((await connected.command("EHLO client.test")).code).toBe(250);
  return connected;
}

/** A plugin that refuses MAIL FROM with its own text, and records when it closes. */
function marker(name: string, log: string[]): Plugin {
  return {
    name,
    setup: () => void log.push(`${name} setup`),
    close: () => void log.push(`${name} close`),
    hooks: { mailFrom: () => reject("5.7.1", `refused by ${name}`) },
  };
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createNetServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });

describe("reload", () => {
  it("new sessions use the new plugins on the same socket; a session in flight finishes on the old ones", async () => {
    const log: string[] = [];
    server = await startTestServer({ plugins: [marker("first", log)], config: { shutdownTimeoutMs: 10_000 } });
    const listeners = [{ address: "127.0.0.1", port: server.port }];
    const before = await client(server.port);

    await server.server.reload({ hostname: "mx.test", listeners, plugins: [marker("second", log)] });
    expect(log).toEqual(["first setup", "second setup"]);
    expect(server.server.addresses()[0]!.port).toBe(server.port);
    expect(
      server.server
        .hookTable()
        .find((hook) => hook.hook === "mailFrom")!
        .handlers.map((h) => h.plugin),
    ).toEqual(["second"]);

    const after = await client(server.port);
    expect((await after.command("MAIL FROM:<a@b.test>")).lines.join()).toContain("refused by second");
    // The session opened before the reload still talks to the plugin it began with.
    expect((await before.command("MAIL FROM:<a@b.test>")).lines.join()).toContain("refused by first");
    expect(log).not.toContain("first close");

    expect((await before.command("QUIT")).code).toBe(221);
    await expect.poll(() => log.includes("first close"), { timeout: 5000 }).toBe(true);
    expect(log).not.toContain("second close");
  });

  it("a bad config, a failing setup or a port in use changes nothing", async () => {
    const log: string[] = [];
    server = await startTestServer({ plugins: [marker("first", log)] });
    const listeners = [{ address: "127.0.0.1", port: server.port }];

    await expect(
      server.server.reload({ hostname: "mx.test", listeners: [{ address: "127.0.0.1", port: 0 }] }),
    ).rejects.toBeInstanceOf(ConfigError);
    await expect(
      server.server.reload({ hostname: "mx.test", listeners, limits: { maxRecipients: -1 } }),
    ).rejects.toThrow(/limits\.maxRecipients/);

    const broken: Plugin = {
      name: "broken",
      setup: () => {
        throw new Error("cannot reach the database");
      },
    };
    await expect(
      server.server.reload({ hostname: "mx.test", listeners, plugins: [marker("second", log), broken] }),
    ).rejects.toMatchObject({ code: "POSTERN_SETUP_FAILED", plugin: "broken" });
    // What had been set up for the refused configuration is closed again.
    expect(log).toEqual(["first setup", "second setup", "second close"]);

    const taken = createNetServer();
    const takenPort = await new Promise<number>((resolve) =>
      taken.listen(0, "127.0.0.1", () => resolve((taken.address() as { port: number }).port)),
    );
    try {
      await expect(
        server.server.reload({
          hostname: "mx.test",
          listeners: [...listeners, { address: "127.0.0.1", port: takenPort }],
          plugins: [marker("third", log)],
        }),
      ).rejects.toMatchObject({ code: "POSTERN_LISTEN_FAILED" });
    } finally {
      taken.close();
    }
    expect(log).toEqual(["first setup", "second setup", "second close", "third setup", "third close"]);

    const still = await client(server.port);
    expect((await still.command("MAIL FROM:<a@b.test>")).lines.join()).toContain("refused by first");
  });

  it("binds listeners added and closes listeners removed; mail flows on the new one", async () => {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), queue.plugin] });
    const oldPort = server.port;
    const newPort = await freePort();
    await server.server.reload({
      hostname: "mx.test",
      listeners: [{ address: "127.0.0.1", port: newPort }],
      plugins: [claimRecipients(), queue.plugin],
    });
    expect(server.server.addresses().map((address) => address.port)).toEqual([newPort]);
    await expect(connectSmtp(oldPort)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const sent = await server.send({
      port: newPort,
      to: "a@example.test",
      raw: buildMessage({ to: "a@example.test" }),
    });
    expect(sent.response).toMatch(/^250 /);
    expect(queue.messages).toHaveLength(1);
  });

  it("observers on server.events see every generation; a plugin's subscriptions end with its generation", async () => {
    const seen: string[] = [];
    const subscriber = (name: string): Plugin => ({
      name,
      setup: (context) => {
        context.events.on(sessionOpened, () => void seen.push(name));
      },
    });
    server = await startTestServer({ plugins: [subscriber("old")] });
    let rootCount = 0;
    server.server.events.on(sessionOpened, () => void rootCount++);
    await server.server.reload({
      hostname: "mx.test",
      listeners: [{ address: "127.0.0.1", port: server.port }],
      plugins: [subscriber("new")],
    });
    (await client(server.port)).close();
    await expect.poll(() => rootCount).toBe(1);
    expect(seen).toEqual(["new"]);
  });

  it("is refused before start and while stopping", async () => {
    server = await startTestServer({ plugins: [] });
    const stopped = server.server.stop();
    await expect(server.server.reload({ listeners: [{ port: server.port }] })).rejects.toMatchObject({
      code: "POSTERN_RELOAD_REFUSED",
    });
    await stopped;
  });
});
