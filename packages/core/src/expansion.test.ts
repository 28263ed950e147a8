// A recipient may resolve to several addresses and routes (aliases, lists, forwards): each gets
// its own route group, duplicates collapse, the size is bounded, and the original stays known.
import { afterEach, describe, expect, it } from "vitest";
import { buildMessage, connectSmtp, memoryQueue, startTestServer, type TestServer } from "../../testing/src/index.ts";
import { accept, type Plugin } from "./index.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

/** A directory: team@ is a list, alice@ a mailbox, fwd@ forwards elsewhere, huge@ too big a list. */
const directory: Plugin = {
  name: "directory",
  hooks: {
    rcptTo(_transaction, recipient) {
      const address = recipient.address.toLowerCase();
      if (address === "team@localhost") {
        return accept({
          expand: [
            { address: "alice@localhost", route: "local" },
            { address: "bob@localhost", route: "local", detail: "team" },
            { address: "carol@elsewhere.test", route: "relay", sender: "SRS0=hash=tt=example.org=sender@localhost" },
          ],
        });
      }
      if (address === "huge@localhost") {
        return accept({
          expand: Array.from({ length: 6 }, (_, index) => ({ address: `m${index}@localhost`, route: "local" })),
        });
      }
      if (address.endsWith("@localhost")) return accept({ route: "local" });
      return undefined;
    },
  },
};

describe("recipient expansion", () => {
  it("stores each expanded address under its own route, keeping the original, detail and sender", async () => {
    const local = memoryQueue({ routes: ["local"] });
    const relay = memoryQueue({ routes: ["relay"] });
    server = await startTestServer({ plugins: [directory, local.plugin, relay.plugin] });
    await server.send({ to: ["team@localhost", "ALICE@localhost"], raw: buildMessage() });
    expect(local.messages[0]!.group.recipients).toMatchObject([
      { address: "alice@localhost", original: "team@localhost", detail: undefined },
      { address: "bob@localhost", original: "team@localhost", detail: "team" },
    ]);
    // ALICE@localhost is alice@localhost again: it collapsed into the one already there.
    expect(local.messages[0]!.recipients).toEqual(["alice@localhost", "bob@localhost"]);
    expect(relay.messages[0]!.group.recipients).toMatchObject([
      {
        address: "carol@elsewhere.test",
        original: "team@localhost",
        sender: "SRS0=hash=tt=example.org=sender@localhost",
      },
    ]);
  });

  it("refuses a recipient past limits.maxExpansion with 550 5.5.3 and keeps the others", async () => {
    const local = memoryQueue();
    server = await startTestServer({ plugins: [directory, local.plugin], config: { limits: { maxExpansion: 5 } } });
    const client = await connectSmtp(server.port);
    await client.read();
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<sender@example.org>");
    const huge = await client.command("RCPT TO:<huge@localhost>");
    expect([huge.code, huge.enhanced]).toEqual([550, "5.5.3"]);
    expect((await client.command("RCPT TO:<alice@localhost>")).code).toBe(250);
    client.close();
  });

  it("keeps a duplicate RCPT TO once", async () => {
    const local = memoryQueue();
    server = await startTestServer({ plugins: [directory, local.plugin] });
    await server.send({ to: ["alice@localhost", "alice@LOCALHOST"], raw: buildMessage() });
    expect(local.messages[0]!.recipients).toEqual(["alice@localhost"]);
  });

  it("answers a wrong expansion (no route) as a plugin error: 451 4.3.0, never an accept", async () => {
    const broken: Plugin = {
      name: "broken",
      hooks: { rcptTo: () => accept({ expand: [{ address: "x@localhost", route: "" }] }) },
    };
    server = await startTestServer({ plugins: [broken, memoryQueue().plugin] });
    const client = await connectSmtp(server.port);
    await client.read();
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<sender@example.org>");
    const reply = await client.command("RCPT TO:<x@localhost>");
    expect([reply.code, reply.enhanced]).toEqual([451, "4.3.0"]);
    expect(server.logs.find((line) => line.code === "POSTERN_HOOK_BAD_VERDICT")?.msg).toMatch(
      /broken returned a verdict of kind "accept" from the rcptTo hook: accepted a recipient with an expansion entry lacking an address or route/,
    );
    client.close();
  });
});
