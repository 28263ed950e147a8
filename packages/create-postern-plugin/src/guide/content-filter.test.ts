import { buildMessage, claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import confidential from "./content-filter.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("content filter", () => {
  it("rewrites Subject, removes a field, replaces the body and adds a recipient, in the stored bytes", async () => {
    const queue = memoryQueue();
    const plugins = [claimRecipients(), confidential({ archive: "archive@localhost" }), queue.plugin];
    server = await startTestServer({ plugins });
    const raw = buildMessage({ subject: "Confidential: Q3", headers: { "X-Mailer": "Mailer 1.0" }, text: "Secret\n" });
    await server.send({ to: "user@localhost", raw });

    const stored = queue.messages[0]!;
    expect(stored.recipients).toEqual(["user@localhost", "archive@localhost"]);
    const text = stored.bytes.toString();
    expect(text).toContain("\r\nSubject: [Confidential] Confidential: Q3\r\n");
    expect(text).not.toContain("X-Mailer");
    expect(text.endsWith("\r\n\r\nThis message is confidential; read it in the archive.\r\n")).toBe(true);
    expect(text).not.toContain("Secret");
  });

  it("leaves other mail alone, byte for byte after core's Received field", async () => {
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [claimRecipients(), confidential({ archive: "a@localhost" }), queue.plugin],
    });
    const raw = buildMessage({ subject: "Lunch", headers: { "X-Mailer": "Mailer 1.0" } });
    await server.send({ to: "user@localhost", raw });
    const text = queue.messages[0]!.bytes.toString();
    expect(text.slice(text.indexOf("From:"))).toBe(raw.toString());
  });
});
