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

let server: TestServer | undefined;
const clients: RawSmtpClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.stop();
  server = undefined;
});

describe("graceful shutdown", () => {
  it("lets a transaction in DATA finish, tells idle sessions 421, and closes plugins", async () => {
    const queue = memoryQueue();
    let pluginClosed = false;
    let sessionsClosed = 0;
    let sessionsClosedBeforePlugin = 0;
    server = await startTestServer({
      plugins: [
        claimRecipients(),
        queue.plugin,
        {
          name: "closer",
          hooks: {
            close: async () => {
              await new Promise((resolve) => setTimeout(resolve, 50));
              sessionsClosed++;
            },
          },
          close: () => {
            pluginClosed = true;
            sessionsClosedBeforePlugin = sessionsClosed;
          },
        },
      ],
      config: { shutdownTimeoutMs: 5000 },
    });
    const idle = await connectSmtp(server.port);
    const busy = await connectSmtp(server.port);
    clients.push(idle, busy);
    await idle.read();
    await busy.read();
    await idle.command("EHLO idle.test");
    await busy.command("EHLO busy.test");
    await busy.command("MAIL FROM:<a@b.test>");
    await busy.command("RCPT TO:<one@localhost>");
    expect((await busy.command("DATA")).code).toBe(354);
    const raw = buildMessage({ subject: "in flight" });
    busy.write(raw.subarray(0, 40));

    const stopped = server.stop();
    expect(await idle.read()).toMatchObject({ code: 421, enhanced: "4.3.2" });
    await idle.closed();

    busy.write(Buffer.concat([raw.subarray(40), Buffer.from(".\r\n")]));
    const reply = await busy.read();
    expect(reply.code).toBe(250);
    expect(queue.messages.map((m) => m.transaction.id)).toEqual([reply.text.split(" ").at(-1)]);
    expect((await busy.command("MAIL FROM:<a@b.test>")).code).toBe(421);
    await stopped;
    expect(pluginClosed).toBe(true);
    // Every session's close hooks finished before the plugins were closed.
    expect(sessionsClosedBeforePlugin).toBe(2);
    server = undefined;
  });

  it("answers 421 to a transaction that outlives the shutdown deadline, never 250", async () => {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), queue.plugin], config: { shutdownTimeoutMs: 300 } });
    const slow = await connectSmtp(server.port);
    clients.push(slow);
    await slow.read();
    await slow.command("EHLO slow.test");
    await slow.command("MAIL FROM:<a@b.test>");
    await slow.command("RCPT TO:<one@localhost>");
    await slow.command("DATA");
    slow.write("Subject: never finished\r\n\r\npart");
    await server.stop();
    server = undefined;
    const reply = await slow.read().catch(() => undefined);
    if (reply) expect(reply.code).toBe(421);
    await slow.closed();
    expect(queue.messages).toHaveLength(0);
  });
});
