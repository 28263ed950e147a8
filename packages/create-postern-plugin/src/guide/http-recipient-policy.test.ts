import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import httpRecipientPolicy from "./http-recipient-policy.ts";

// A stand-in for the policy service: a real HTTP server on loopback that answers by recipient.
let service: Server;
let url: string;
const abandoned: string[] = [];
beforeAll(async () => {
  service = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    let body = "";
    for await (const chunk of request) body += chunk;
    const { recipient } = JSON.parse(body) as { recipient: string };
    const user = recipient.split("@")[0];
    if (user === "slow") {
      // Never answer; note when the client gives up (the hook's deadline aborted fetch).
      response.on("close", () => abandoned.push(recipient));
      return;
    }
    if (user === "broken") return response.writeHead(500).end();
    const action = user === "alice" ? "accept" : user === "gone" ? "reject" : "next";
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ action }));
  });
  service.listen(0, "127.0.0.1");
  await once(service, "listening");
  url = `http://127.0.0.1:${(service.address() as AddressInfo).port}/policy`;
});
afterAll(() => {
  service.closeAllConnections();
  service.close();
});

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("http-recipient-policy", () => {
  it("accepts, rejects or passes on each recipient as the service says", async () => {
    const queue = memoryQueue();
    server = await startTestServer({ plugins: [httpRecipientPolicy({ url }), queue.plugin] });
    const client = await server.connect();
    await client.read(); // greeting
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<sender@example.org>");
    expect((await client.command("RCPT TO:<alice@localhost>")).code).toBe(250);
    const gone = await client.command("RCPT TO:<gone@localhost>");
    expect([gone.code, gone.enhanced]).toEqual([550, "5.1.1"]);
    // "next": nobody else claims the recipient, so core's default applies (no open relay).
    const unknown = await client.command("RCPT TO:<stranger@localhost>");
    expect([unknown.code, unknown.enhanced]).toEqual([550, "5.7.1"]);
    client.close();
  });

  it("defers when the service does not answer in time, and aborts the request", async () => {
    server = await startTestServer({ plugins: [httpRecipientPolicy({ url, timeoutMs: 300 })] });
    const client = await server.connect();
    await client.read();
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<sender@example.org>");
    const slow = await client.command("RCPT TO:<slow@localhost>");
    expect([slow.code, slow.enhanced]).toEqual([451, "4.4.3"]);
    await expect.poll(() => abandoned).toContain("slow@localhost");
    client.close();
  });

  it("defers when the service fails", async () => {
    server = await startTestServer({ plugins: [httpRecipientPolicy({ url })] });
    const client = await server.connect();
    await client.read();
    await client.command("EHLO client.test");
    await client.command("MAIL FROM:<sender@example.org>");
    const broken = await client.command("RCPT TO:<broken@localhost>");
    expect([broken.code, broken.enhanced]).toEqual([451, "4.4.3"]);
    client.close();
  });
});
