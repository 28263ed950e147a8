import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  claimRecipients,
  memoryQueue,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("message path", () => {
  it("accepts, stores through the queue hook and answers 250 with the queue ID", async () => {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [claimRecipients(), queue.plugin] });
    const raw = buildMessage({ subject: "hello" });
    const result = await server.send({ to: "user@localhost", raw });
    expect(result.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Z]{20}$/);
    expect(queue.messages).toHaveLength(1);
    const stored = queue.messages[0]!;
    expect(stored.bytes.toString()).toMatch(
      /^Received: from client\.test \([^ ]+ \[127\.0\.0\.1\]\)\r\n\tby mx\.test \(Postern\) with ESMTP id /,
    );
    expect(stored.bytes.subarray(stored.bytes.length - raw.length).equals(raw)).toBe(true);
  });
});
