// Data hooks rewrite the message (the milter action set) and the recipient list; each action is
// sent over real SMTP and checked in the bytes the store was handed.
import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  bulkyText,
  claimRecipients,
  memoryQueue,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";
import { accept, discard, type Message, type Plugin, reject, type Transaction } from "./index.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

const original = buildMessage({
  subject: "Hello",
  headers: [
    ["X-Spam", "first"],
    ["X-Keep", "kept"],
    ["X-Spam", "second"],
  ],
  text: "Original body\nsecond line\n",
});

/** Sends `original` through a server whose one data hook is `rewrite`; returns what was stored. */
async function stored(rewrite: (message: Message, transaction: Transaction) => unknown, raw: Buffer = original) {
  const queue = memoryQueue();
  const filter: Plugin = {
    name: "filter",
    hooks: {
      async data(transaction, message) {
        await rewrite(message, transaction);
        return undefined;
      },
    },
  };
  server = await startTestServer({ plugins: [claimRecipients(), filter, queue.plugin] });
  const result = await server.send({ to: "user@localhost", raw });
  const captured = queue.messages[0]!;
  return { text: captured?.bytes.toString("latin1") ?? "", captured, queue, result };
}

/** Header section and body of stored bytes (the Received field core wrote comes first). */
function split(text: string) {
  const end = text.indexOf("\r\n\r\n");
  return { header: text.slice(0, end + 2), body: text.slice(end + 4) };
}

const fieldNames = (header: string) =>
  header
    .split("\r\n")
    .filter((line) => line && !/^[ \t]/.test(line))
    .map((line) => line.slice(0, line.indexOf(":")));

describe("header rewriting", () => {
  it("adds a field at the end of the header section (SMFIR_ADDHEADER)", async () => {
    const { text } = await stored((message) => message.addHeader("X-Filtered", "yes"));
    const { header, body } = split(text);
    expect(header.endsWith("X-Spam: second\r\nX-Filtered: yes\r\n")).toBe(true);
    expect(body).toBe("Original body\r\nsecond line\r\n");
  });

  it("inserts a field at an index, and on top with prepend (SMFIR_INSHEADER)", async () => {
    const { text } = await stored((message) => {
      message.insertHeader(2, "X-Inserted", "at 2");
      message.prepend("X-Top", "first field");
    });
    const names = fieldNames(split(text).header);
    // Received (core) was field 0 when the hook ran, From field 1: the insertion went before To.
    expect(names.slice(0, 5)).toEqual(["X-Top", "Received", "From", "X-Inserted", "To"]);
  });

  it("changes the n-th field of a name and removes one with a null value (SMFIR_CHGHEADER)", async () => {
    const { text } = await stored((message) => {
      message.changeHeader("Subject", 1, "[SPAM] Hello");
      message.changeHeader("x-spam", 2, null);
      message.changeHeader("X-Missing", 1, "added because absent");
    });
    const { header } = split(text);
    expect(header).toContain("\r\nSubject: [SPAM] Hello\r\n");
    expect(header).toContain("X-Spam: first\r\n");
    expect(header).not.toContain("X-Spam: second");
    expect(header.endsWith("X-Missing: added because absent\r\n")).toBe(true);
  });

  it("removes every field of a name, or one occurrence, leaving every other byte as received", async () => {
    const { text } = await stored((message) => {
      expect(message.removeHeader("X-Spam", 2)).toBe(1);
      expect(message.removeHeader("x-keep")).toBe(1);
      expect(message.removeHeader("X-Absent")).toBe(0);
    });
    const received = original.toString("latin1");
    const withoutRemoved = received.replace("X-Keep: kept\r\n", "").replace("X-Spam: second\r\n", "");
    // Everything after core's Received field is the original, less the two fields.
    expect(text.slice(text.indexOf("From:"))).toBe(withoutRemoved);
  });

  it("shows every change to later plugins: headers, size and stream", async () => {
    const queue = memoryQueue();
    const seen: { subject?: string; size?: number; streamed?: number; added?: string[] } = {};
    const first: Plugin = {
      name: "first",
      hooks: { data: (_tx, message) => void message.changeHeader("Subject", 1, "Rewritten by first") },
    };
    const second: Plugin = {
      name: "second",
      hooks: {
        async data(_tx, message) {
          seen.subject = message.headers.get("subject");
          seen.size = message.size;
          seen.added = message.added.map((field) => field.name);
          let streamed = 0;
          for await (const chunk of message.stream()) streamed += (chunk as Buffer).length;
          seen.streamed = streamed;
          return undefined;
        },
      },
    };
    server = await startTestServer({ plugins: [claimRecipients(), first, second, queue.plugin] });
    await server.send({ to: "user@localhost", raw: original });
    expect(seen.subject).toBe("Rewritten by first");
    expect(seen.size).toBe(seen.streamed);
    expect(seen.size).toBe(queue.messages[0]!.bytes.length);
    expect(seen.added).toEqual(["Received", "Subject"]);
  });
});

describe("body replacement (SMFIR_REPLBODY)", () => {
  it("replaces the body from a string, turning bare LF into CRLF", async () => {
    const { text } = await stored((message) => message.replaceBody("New body\nline two\n"));
    const { header, body } = split(text);
    expect(header).toContain("Subject: Hello\r\n");
    expect(body).toBe("New body\r\nline two\r\n");
  });

  it("streams a large replacement into the spool (never wholly in memory) and stores it exactly", async () => {
    const big = bulkyText(3 * 1024 * 1024).replace(/\n/g, "\r\n");
    const { text, captured } = await stored(async (message) => {
      await message.replaceBody(
        (async function* () {
          for (let offset = 0; offset < big.length; offset += 64 * 1024)
            yield Buffer.from(big.slice(offset, offset + 64 * 1024));
        })(),
      );
      expect(message.bodyReplaced).toBe(true);
    });
    expect(split(text).body).toBe(big);
    expect(captured.bytes.length).toBe(Buffer.byteLength(text, "latin1"));
  });
});

describe("recipient rewriting", () => {
  it("adds a recipient with a route, removes one, and the store gets the final list", async () => {
    const { captured } = await stored(async (_message, transaction) => {
      const added = await transaction.addRecipient("archive@localhost", { route: "local" });
      expect(added.ok).toBe(true);
      expect(transaction.removeRecipient("USER@localhost")).toBe(1);
    });
    expect(captured.recipients).toEqual(["archive@localhost"]);
    expect(captured.group.recipients[0]!.original).toBe("archive@localhost");
  });

  it("changes the envelope sender and adds a recipient with ESMTP parameters (SMFIR_CHGFROM, SMFIR_ADDRCPT_PAR)", async () => {
    const { captured } = await stored(async (_message, transaction) => {
      transaction.changeSender("bounces@localhost", { BODY: "8BITMIME" });
      await transaction.addRecipient("audit@localhost", { route: "local", parameters: { NOTIFY: "NEVER" } });
    });
    expect(captured.from).toBe("bounces@localhost");
    expect(captured.transaction.mailFrom.parameters).toEqual({ BODY: "8BITMIME" });
    expect(captured.group.recipients.at(-1)).toMatchObject({
      address: "audit@localhost",
      parameters: { NOTIFY: "NEVER" },
    });
  });

  it("routes an added recipient through the rcptTo hooks when no route is given, refusals included", async () => {
    const queue = memoryQueue({ routes: ["local"] });
    const outcomes: unknown[] = [];
    const filter: Plugin = {
      name: "bcc",
      hooks: {
        async data(transaction) {
          outcomes.push(await transaction.addRecipient("copy@localhost"));
          outcomes.push(await transaction.addRecipient("stranger@elsewhere.test"));
          return undefined;
        },
      },
    };
    server = await startTestServer({
      plugins: [claimRecipients({ match: (address) => address.endsWith("@localhost") }), filter, queue.plugin],
    });
    await server.send({ to: "user@localhost", raw: original });
    expect(outcomes[0]).toMatchObject({ ok: true, recipients: [{ address: "copy@localhost", route: "local" }] });
    expect(outcomes[1]).toMatchObject({ ok: false, refusal: { status: "5.7.1" } });
    expect(queue.messages[0]!.recipients).toEqual(["user@localhost", "copy@localhost"]);
  });

  it("discards a message whose every recipient was removed: 250, nothing stored", async () => {
    const { queue, result } = await stored((_message, transaction) => {
      transaction.removeRecipient("user@localhost");
    });
    expect(result.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expect(queue.messages).toHaveLength(0);
    expect(server!.logs.find((line) => line.msg === "discarded")).toMatchObject({
      reason: "every recipient was removed",
    });
  });
});

describe("quarantine and discard", () => {
  it("quarantines: every recipient's group is stored under the quarantine route, and a later plugin may still refuse", async () => {
    const quarantine = memoryQueue({ routes: ["quarantine"] });
    const filter: Plugin = {
      name: "suspicious",
      hooks: { data: (transaction) => void transaction.quarantine("looks like phishing") },
    };
    server = await startTestServer({ plugins: [claimRecipients(), filter, quarantine.plugin] });
    await server.send({ to: ["a@localhost", "b@localhost"], raw: original });
    expect(quarantine.messages).toHaveLength(1);
    expect(quarantine.messages[0]!.route).toBe("quarantine");
    expect(quarantine.messages[0]!.recipients).toEqual(["a@localhost", "b@localhost"]);
    expect(quarantine.messages[0]!.transaction.quarantined).toEqual({ reason: "looks like phishing" });
    await server.stop();

    const refuser: Plugin = { name: "refuser", hooks: { data: () => reject("5.7.1", "Refused after all") } };
    server = await startTestServer({ plugins: [claimRecipients(), filter, refuser, quarantine.plugin] });
    const refused = await server.send({ to: "a@localhost", raw: original }).catch((error: Error) => error);
    expect(String((refused as { response?: string }).response)).toMatch(/^550 5\.7\.1 Refused after all/);
  });

  it("discard answers 250 with a queue ID, stores nothing and runs no later data hook", async () => {
    const queue = memoryQueue();
    let laterRan = false;
    const dropper: Plugin = { name: "dropper", hooks: { data: () => discard("known spam run") } };
    const later: Plugin = {
      name: "later",
      hooks: {
        data: () => {
          laterRan = true;
        },
      },
    };
    server = await startTestServer({ plugins: [claimRecipients(), dropper, later, queue.plugin] });
    const result = await server.send({ to: "user@localhost", raw: original });
    expect(result.response).toMatch(/^250 2\.0\.0 Ok: queued as \S+/);
    expect(queue.messages).toHaveLength(0);
    expect(laterRan).toBe(false);
    expect(server.logs.find((line) => line.msg === "discarded")).toMatchObject({
      plugin: "dropper",
      reason: "known spam run",
    });
  });

  it("refuses rewriting once queueing has begun", async () => {
    const errors: string[] = [];
    const late: Plugin = {
      name: "late",
      hooks: {
        queue(transaction) {
          try {
            transaction.quarantine("too late");
          } catch (error) {
            errors.push((error as Error).message);
          }
          return accept();
        },
      },
    };
    server = await startTestServer({ plugins: [claimRecipients(), late] });
    await server.send({ to: "user@localhost", raw: original });
    expect(errors).toEqual(["quarantine(): the recipients are final once queueing has begun"]);
  });
});
