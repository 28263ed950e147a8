import { buildMessage, claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import lastOutcome from "./last-outcome.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("last-outcome", () => {
  it("logs the end of each transaction with its outcome and reply code", async () => {
    server = await startTestServer({ plugins: [lastOutcome(), claimRecipients(), memoryQueue().plugin] });
    const result = await server.send({ to: "user@localhost", raw: buildMessage() });
    const queueId = result.response.split(" ").at(-1);
    expect(server.logs.find((line) => line.msg === "transaction ended")).toMatchObject({
      queueId,
      outcome: "queued",
      code: 250,
    });
  });
});
