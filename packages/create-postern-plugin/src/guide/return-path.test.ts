import { buildMessage, claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import returnPath from "./return-path.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("return-path", () => {
  it("puts the envelope sender on top and drops the one the sender wrote", async () => {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), returnPath(), queue.plugin] });
    const raw = buildMessage({ headers: { "Return-Path": "<forged@example.net>" } });
    await server.send({ from: "bounces@example.org", to: "user@localhost", raw });

    const stored = queue.messages[0]!.bytes.toString();
    // Fields prepended by data hooks sit above the Received field core writes first.
    expect(stored).toMatch(/^Return-Path: <bounces@example\.org>\r\nReceived: from client\.test /);
    expect(stored).not.toContain("forged@example.net");
  });
});
