import { reject } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  connectSmtp,
  memoryQueue,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import transactionLog, { recorderFor, type TransactionRecord } from "./index.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const lines = (test: TestServer) => test.logs.filter((line) => line.msg === "transaction");

describe("the transaction log line", () => {
  it("tells one message's story in one line: client, HELO, sender, each recipient, size, delays, trail, reply", async () => {
    server = await startTestServer({
      plugins: [
        transactionLog(),
        {
          name: "test:no-bob",
          hooks: {
            rcptTo: (_tx, rcpt) => (rcpt.address.startsWith("bob@") ? reject("5.1.1", "No such user") : undefined),
          },
        },
        claimRecipients(),
        memoryQueue().plugin,
      ],
    });
    const client = await connectSmtp(server.port);
    await client.read();
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<alice@sender.test>");
    expect((await client.command("RCPT TO:<carol@example.test>")).code).toBe(250);
    expect((await client.command("RCPT TO:<bob@example.test>")).code).toBe(550);
    await client.command("DATA");
    client.write(buildMessage({ to: "carol@example.test" }));
    const reply = await client.command("\r\n.");
    expect(reply.code).toBe(250);
    await client.command("QUIT");
    client.close();

    await expect.poll(() => lines(server!).length).toBe(1);
    const line = lines(server)[0]!;
    const queueId = /queued as (\S+)/.exec(reply.lines.join(" "))![1];
    expect(line).toMatchObject({
      level: 30,
      queueId,
      outcome: "queued",
      client: "127.0.0.1",
      helo: "client.test",
      from: "alice@sender.test",
      rcpt: [
        { to: "carol@example.test", outcome: "accepted", route: "local" },
        { to: "bob@example.test", outcome: "refused", reply: "550 5.1.1 No such user" },
      ],
      reply: `250 2.0.0 Ok: queued as ${queueId}`,
    });
    expect(line.size).toBeGreaterThan(50);
    const trail = line.trail as string[];
    expect(trail).toContainEqual(
      expect.stringMatching(/^rcptTo test:no-bob reject 550 5\.1\.1 No such user [\d.]+ms$/),
    );
    expect(trail).toContainEqual(expect.stringMatching(/^rcptTo test:claim-recipients accept [\d.]+ms$/));
    expect(trail).toContainEqual(expect.stringMatching(/^queue test:memory-queue accept [\d.]+ms$/));
    // Calls that answered nothing are left out of the line by default.
    expect(trail.some((entry) => entry.startsWith("rcptTo test:no-bob -"))).toBe(false);
    expect((line.delays as { transaction: number }).transaction).toBeGreaterThan(0);
  });

  it("records refusals at DATA and shares one recorder per server", async () => {
    const records: TransactionRecord[] = [];
    server = await startTestServer({
      plugins: [
        transactionLog({ trail: "all" }),
        {
          name: "test:watcher",
          setup: (context) => {
            recorderFor(context).subscribe((record) => records.push(record));
            expect(recorderFor(context)).toBe(recorderFor(context));
          },
        },
        claimRecipients(),
        { name: "test:no-data", hooks: { mailFrom: () => undefined, data: () => reject("5.7.1", "Content refused") } },
      ],
    });
    await expect(
      server.send({ to: "a@example.test", raw: buildMessage({ to: "a@example.test" }) }),
    ).rejects.toMatchObject({
      responseCode: 550,
    });
    await expect.poll(() => records.length).toBe(1);
    expect(records[0]).toMatchObject({ outcome: "refused", reply: "550 5.7.1 Content refused" });
    expect(records[0]!.trail.map((step) => `${step.hook}:${step.plugin}:${step.verdict}`)).toContain(
      "data:test:no-data:reject",
    );
    const line = lines(server)[0]!;
    expect(line.trail as string[]).toContainEqual(expect.stringMatching(/^mailFrom test:no-data - [\d.]+ms$/));
  });

  it("refuses options it does not know, naming the key", () => {
    expect(() => transactionLog({ levle: "info" } as never)).toThrow(/@postern\/transaction-log/);
  });
});
