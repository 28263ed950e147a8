// Overload: many idle or slow (one byte per second) connections from one address must not stop
// another address from being served; idle sessions end with 421 after the listener's
// socketTimeoutMs; a full listener (maxClients) answers 421; memory stays bounded.
//   pnpm --filter @postern/reliability test:overload
import rateLimit from "@postern/rate-limit";
import { claimRecipients, type MemoryQueue, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import { megabytes, settledRss } from "./support/memory.ts";
import { openPeer, type Peer } from "./support/raw-exchange.ts";

const crowded = "127.0.0.1";
const other = "127.0.0.2";

let server: TestServer | undefined;
const peers: Peer[] = [];

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.destroy();
  await server?.stop();
  server = undefined;
});

async function peer(port: number, localAddress = crowded): Promise<Peer> {
  const opened = await openPeer(port, { localAddress });
  peers.push(opened);
  return opened;
}

/** A whole transaction from `localAddress`; resolves with the reply to DATA. */
async function sendFrom(port: number, localAddress: string, subject: string): Promise<string> {
  const client = await peer(port, localAddress);
  await client.waitForLine(/^220 /);
  return transaction(client, subject);
}

/** A transaction on a greeted session; resolves with the reply to DATA. */
async function transaction(client: Peer, subject: string): Promise<string> {
  await client.write("EHLO other.test\r\n");
  await client.waitForLine(/^250 /);
  for (const [command, expected] of [
    ["MAIL FROM:<sender@example.org>", /^250 /],
    ["RCPT TO:<user@mx.test>", /^250 /],
    ["DATA", /^354 /],
  ] as const) {
    await client.write(`${command}\r\n`);
    await client.waitForLine(expected);
  }
  await client.write(`Subject: ${subject}\r\n\r\nserved\r\n.\r\n`);
  const reply = await client.waitForLine(/^\d{3} /);
  await client.write("QUIT\r\n");
  return reply;
}

/** Writes `text` one byte per second until it is written or `stop()` is called. */
function dribble(target: Peer, text: string): { stop(): void; done: Promise<void> } {
  let stopped = false;
  const done = (async () => {
    for (const byte of text) {
      if (stopped || target.transcript().closed) return;
      await target.write(byte);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  return {
    stop() {
      stopped = true;
    },
    done,
  };
}

describe("overload from one address", () => {
  it("idle and one-byte-per-second sessions from 127.0.0.1 do not stop 127.0.0.2 from being served", async () => {
    const queue: MemoryQueue = memoryQueue();
    server = await startTestServer({
      plugins: [
        rateLimit({ limits: [{ kind: "concurrent", key: "ip", limit: 100 }] }),
        claimRecipients(),
        queue.plugin,
      ],
      // The slow DATA sessions are still in flight when the test stops the server: don't wait for them.
      config: {
        listeners: [{ address: "127.0.0.1", port: 1, maxClients: 1000, socketTimeoutMs: 60_000 }],
        shutdownTimeoutMs: 1000,
      },
    });
    const port = server.port;
    const rssBefore = await settledRss();

    // 300 connections from one address: its concurrency limit (100) lets the first in, the rest get 421.
    const crowd = await Promise.all(Array.from({ length: 300 }, () => peer(port)));
    const greetings = await Promise.all(crowd.map((one) => one.waitForLine(/^\d{3} /)));
    const admitted = crowd.filter((_, index) => greetings[index]!.startsWith("220 "));
    const turnedAway = greetings.filter((line) => !line.startsWith("220 "));
    expect(admitted.length).toBe(100);
    expect(turnedAway.length).toBe(200);
    for (const line of turnedAway) expect(line).toMatch(/^421 4\.7\.0 /);

    // Of those admitted: 60 stay silent, 30 send EHLO a byte a second, 10 send their message body
    // a byte a second after DATA.
    const slow: ReturnType<typeof dribble>[] = [];
    for (const one of admitted.slice(60, 90)) slow.push(dribble(one, "EHLO slow.test\r\n"));
    for (const one of admitted.slice(90)) {
      await one.write("EHLO slow.test\r\nMAIL FROM:<slow@example.org>\r\nRCPT TO:<user@mx.test>\r\nDATA\r\n");
      await one.waitForLine(/^354 /);
      slow.push(dribble(one, "Subject: slow\r\n\r\nvery slow body\r\n.\r\n"));
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));

    // Another address is served as usual while all that goes on.
    expect(await sendFrom(port, other, "from the other address")).toMatch(/^250 /);
    const stored = queue.messages.find((message) => message.bytes.includes("from the other address"));
    expect(stored?.transaction.session.remoteAddress).toBe(other);
    // And the crowded address is still refused beyond its share, not served past it.
    const extra = await peer(port);
    expect(await extra.waitForLine(/^\d{3} /)).toMatch(/^421 /);

    const growth = megabytes((await settledRss()) - rssBefore);
    expect(growth, "RSS growth with 300 connections and 40 slow sessions").toBeLessThan(100);
    for (const one of slow) one.stop();
    // The slow sessions are all still open: nothing timed them out or served them early.
    expect(admitted.every((one) => !one.transcript().closed)).toBe(true);
    expect(queue.messages.some((message) => message.bytes.includes("very slow body"))).toBe(false);
  });
});

describe("timeouts and limits answer 421", () => {
  it("closes an idle session, and one stalled inside DATA, with 421 after socketTimeoutMs", async () => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [claimRecipients(), queue.plugin],
      config: { listeners: [{ address: "127.0.0.1", port: 1, socketTimeoutMs: 1000 }], shutdownTimeoutMs: 5000 },
    });
    const idle = await peer(server.port);
    await idle.waitForLine(/^220 /);
    const stalled = await peer(server.port);
    await stalled.waitForLine(/^220 /);
    await stalled.write("EHLO stalled.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<user@mx.test>\r\nDATA\r\n");
    await stalled.waitForLine(/^354 /);
    await stalled.write("Subject: cut off\r\n\r\nhalf a mess");

    for (const session of [idle, stalled]) {
      expect(await session.waitForLine(/^421 /, 10_000)).toMatch(/^421 \S+ Timeout/);
      expect(await session.waitForClose(5000)).toBe(true);
    }
    expect(queue.messages).toEqual([]);
    // The session cut off inside DATA is over for the server too (once it has noticed the cut):
    // shutdown has nothing to wait for.
    const logs = server.logs;
    for (let waited = 0; waited < 10_000 && !logs.some((record) => record.msg === "DATA failed"); waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const stopping = server;
    server = undefined;
    await stopping.stop();
    const shutdown = stopping.logs.find((record) => record.msg === "shutting down");
    expect(shutdown?.inFlight).toBe(0);
  });

  it("answers 421 to a connection beyond maxClients and serves again once one leaves", async () => {
    server = await startTestServer({
      plugins: [claimRecipients(), memoryQueue().plugin],
      config: { listeners: [{ address: "127.0.0.1", port: 1, maxClients: 5 }] },
    });
    const port = server.port;
    const full = await Promise.all(Array.from({ length: 5 }, () => peer(port)));
    for (const one of full) await one.waitForLine(/^220 /);

    const sixth = await peer(port);
    expect(await sixth.waitForLine(/^\d{3} /)).toMatch(/^421 /);
    expect(await sixth.waitForClose(5000)).toBe(true);

    full[0]!.destroy();
    // The server notices the close on its own schedule: until then a newcomer still gets 421.
    let newcomer: Peer | undefined;
    for (let attempt = 0; attempt < 100 && !newcomer; attempt++) {
      const candidate = await peer(port, other);
      if ((await candidate.waitForLine(/^\d{3} /)).startsWith("220 ")) newcomer = candidate;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(newcomer, "no connection was greeted after one left").toBeDefined();
    expect(await transaction(newcomer!, "after one left")).toMatch(/^250 /);
  });
});
