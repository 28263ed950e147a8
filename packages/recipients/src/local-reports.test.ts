// Local domains always deliver locally, whatever outbound's routes say: with every message going
// to a smarthost, a delivery report to one of our own users is stored in their mailbox (core's
// submit() runs it through this plugin's rcptTo), not handed to the smarthost and lost.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import outbound from "@postern/outbound";
import { memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, expect, it } from "vitest";
import recipients from "./index.ts";
import { send } from "./test-smtp.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups.length = 0;
});

it("stores a bounce to a local sender in the local mailbox, though a smarthost takes all outgoing mail", async () => {
  // The smarthost: takes nothing for remote.example (nobody claims it: 550 5.7.1) and records what it got.
  const smarthostQueue = memoryQueue();
  const smarthost: TestServer = await startTestServer({
    plugins: [recipients({ domains: ["smarthost.example"] }), smarthostQueue.plugin],
  });
  cleanups.push(() => smarthost.stop());
  const dir = await mkdtemp(join(tmpdir(), "postern-local-reports-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const mailbox = memoryQueue({ routes: ["local"] });
  const server = await startTestServer({
    hostname: "mx.example.com",
    plugins: [
      recipients({
        domains: ["example.com"],
        mailboxes: ["alice@example.com"],
        relay: { networks: ["127.0.0.0/8"] },
      }),
      outbound({
        queue: { type: "fs", dir },
        queueRoutes: ["relay", "forward"],
        smarthost: { host: "127.0.0.1", port: smarthost.port, tls: "none" },
        mtaSts: { enabled: false },
      }),
      mailbox.plugin,
    ],
  });
  cleanups.push(() => server.stop());

  const report = mailbox.next(20_000);
  // alice (a trusted network may relay) writes to someone the smarthost refuses.
  expect(await send(server, ["someone@remote.example"], "alice@example.com")).toMatch(/^250/);
  const bounce = await report;
  expect(bounce.from).toBe("");
  expect(bounce.recipients).toEqual(["alice@example.com"]);
  expect(bounce.bytes.toString()).toMatch(/^Final-Recipient: rfc822; ?someone@remote\.example/im);
  expect(smarthostQueue.messages).toEqual([]);
});
