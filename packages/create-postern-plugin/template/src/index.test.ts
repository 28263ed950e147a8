// Tests over real SMTP on loopback: @postern/testing starts the real server in-process with the
// plugin under test, and sends with nodemailer like a real peer would.
import { ConfigError } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  memoryQueue,
  type SendError,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import templatePlugin, { templatePluginResult } from "./index.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start() {
  const queue = memoryQueue();
  // claimRecipients() accepts every recipient and memoryQueue() stores messages in memory: the
  // smallest server that takes mail. In production these are e.g. @postern/recipients and a store.
  server = await startTestServer({
    plugins: [templatePlugin({ blockedDomains: ["spam.example"] }), claimRecipients(), queue.plugin],
  });
  return { server, queue };
}

describe("postern-plugin-template", () => {
  it("refuses a sender from a blocked domain at MAIL FROM with 550 5.7.1", async () => {
    const { server, queue } = await start();
    const error = await server.send({ from: "bulk@Spam.Example", to: "user@localhost", raw: buildMessage() }).then(
      () => undefined,
      (caught: SendError) => caught,
    );
    expect(error?.response).toBe("550 5.7.1 Mail from this domain is not accepted here");
    expect(queue.messages).toHaveLength(0);
  });

  it("accepts other senders and records its decision for other plugins", async () => {
    const { server, queue } = await start();
    const result = await server.send({ from: "alice@example.org", to: "user@localhost", raw: buildMessage() });
    expect(result.response).toMatch(/^250 /);
    expect(queue.messages[0]!.transaction.results.get(templatePluginResult)).toEqual({
      domain: "example.org",
      blocked: false,
    });
  });

  it("names the offending option", () => {
    expect(() => templatePlugin({ blockedDomains: [] })).toThrow(ConfigError);
    expect(() => templatePlugin({ blockedDomains: [] })).toThrow("postern-plugin-template.blockedDomains: ");
  });
});
