// SIGTERM while 200 sessions are in the middle of DATA: `postern start` stops taking new
// connections, lets the transactions in flight finish within shutdownTimeoutMs, ends the ones
// that do not with 421, and exits. Every message answered 250 is stored exactly as sent, no
// message is stored half, and the process is gone within the shutdown deadline.
//   pnpm --filter @postern/reliability test:faults
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { connectSmtp, type RawSmtpClient } from "@postern/testing";
import { afterAll, describe, expect, it } from "vitest";
import { makeMessage } from "./support/fault-load.ts";
import { type FaultServer, startFaultServer } from "./support/fault-server.ts";
import { checkStored, readMaildir } from "./support/stored-mail.ts";

const recipient = "user@fault.test";
const sessions = 200;
/** Of the sessions, these send the rest of their message after SIGTERM; the others stall. */
const finishing = 150;
const shutdownTimeoutMs = 6000;
/** Past the deadline: closing the plugins and the process exit. */
const exitGraceMs = 4000;

let server: FaultServer | undefined;
afterAll(async () => {
  await server?.cleanup();
});

interface InData {
  client: RawSmtpClient;
  messageId: string;
  rest: string;
  stored: Buffer;
}

describe("SIGTERM with 200 sessions in DATA", () => {
  it("finishes or refuses every one of them, stores nothing half, and exits within the deadline", async () => {
    server = await startFaultServer("shutdown", (dir) => ({
      listeners: [{ maxClients: 1000 }],
      shutdownTimeoutMs,
      plugins: [
        { package: "@postern/recipients", options: { domains: ["fault.test"] } },
        { package: "@postern/store-maildir", options: { root: join(dir, "maildir") } },
      ],
    }));
    const port = server.port;

    const open = async (index: number): Promise<InData> => {
      const client = await connectSmtp(port);
      expect((await client.read()).code).toBe(220);
      for (const [line, code] of [
        ["EHLO shutdown.test", 250],
        ["MAIL FROM:<load@example.org>", 250],
        [`RCPT TO:<${recipient}>`, 250],
        ["DATA", 354],
      ] as const) {
        expect((await client.command(line)).code, line).toBe(code);
      }
      const messageId = `<shutdown.${index}.${Date.now().toString(36)}@load.test>`;
      const { wire, stored } = makeMessage(messageId, "load@example.org", recipient, 3000 + index * 17);
      const half = Math.floor(wire.length / 2);
      client.write(wire.slice(0, half));
      return { client, messageId, rest: `${wire.slice(half)}.\r\n`, stored };
    };
    const inData: InData[] = [];
    for (let batch = 0; batch < sessions; batch += 50) {
      inData.push(...(await Promise.all(Array.from({ length: 50 }, (_, offset) => open(batch + offset)))));
    }

    const signalled = Date.now();
    server.process.child.kill("SIGTERM");
    const exited = server.process.exited.then((how) => ({ how, ms: Date.now() - signalled }));
    // A moment for the signal to land, then the finishing sessions send the rest of their message.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const replies = await Promise.all(
      inData.map(async (session, index) => {
        if (index < finishing) session.client.write(session.rest);
        try {
          return (await session.client.read(shutdownTimeoutMs + exitGraceMs + 5000)).code;
        } catch {
          return 0; // closed without a reply
        } finally {
          session.client.close();
        }
      }),
    );
    const { how, ms } = await exited;
    expect(how, server.process.output()).toBe(0);
    expect(ms, "time from SIGTERM to exit").toBeLessThan(shutdownTimeoutMs + exitGraceMs);

    const acknowledged = new Map<string, { messageId: string; recipient: string; length: number; sha256: string }>();
    const notAcknowledged = new Map<string, { messageId: string; recipient: string; length: number; sha256: string }>();
    inData.forEach((session, index) => {
      const sent = {
        messageId: session.messageId,
        recipient,
        length: session.stored.length,
        sha256: createHash("sha256").update(session.stored).digest("hex"),
      };
      (replies[index] === 250 ? acknowledged : notAcknowledged).set(session.messageId, sent);
    });
    const finishedReplies = replies.slice(0, finishing);
    const stalledReplies = replies.slice(finishing);
    console.log(
      `SIGTERM with ${sessions} in DATA: exit after ${ms} ms; finishing sessions: ${finishedReplies.filter((code) => code === 250).length}× 250, others ${JSON.stringify(finishedReplies.filter((code) => code !== 250))}; stalled sessions: ${JSON.stringify(countBy(stalledReplies))}`,
    );
    // Transactions that completed in time are served; the stalled ones are told 421 (or cut off).
    expect(finishedReplies.every((code) => code === 250)).toBe(true);
    for (const code of stalledReplies) expect([421, 0]).toContain(code);

    const stored = await readMaildir(join(server.dir, "maildir"), recipient);
    const check = checkStored(
      {
        acknowledged,
        notAcknowledged,
        temporary: [],
        permanent: [],
        hangs: [],
        dropped: { count: 0 },
        ackTimes: [],
        stop: async () => undefined,
      },
      stored,
      [recipient],
    );
    expect(check.problems).toEqual([]);
    expect(check.storedUnacknowledged, "stalled messages stored").toBe(0);
    expect(stored.length).toBe(acknowledged.size);
    expect(await readdir(join(server.dir, "maildir", "fault.test", "user", "tmp"))).toEqual([]);
  });
});

function countBy(codes: number[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const code of codes) counts[code] = (counts[code] ?? 0) + 1;
  return counts;
}
