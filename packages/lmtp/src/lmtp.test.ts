// @postern/lmtp against a scripted LMTP peer on a raw socket, for the answers Dovecot won't give
// on demand: a refused MAIL FROM, a connection lost after the message, a server that never answers.
import { createServer, type Server, type Socket } from "node:net";
import { buildMessage, claimRecipients, type SendError, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import lmtp from "./index.ts";

interface Script {
  mail?: string;
  /** After the final dot: one reply per recipient, "drop" to close without a word, or "silent". */
  afterData?: string[] | "drop" | "silent";
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function scriptedLmtp(script: Script): Promise<{ port: number; transcript: string[] }> {
  const transcript: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffer = "";
    let inData = false;
    let recipients = 0;
    socket.write("220 scripted LMTP\r\n");
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("latin1");
      for (;;) {
        if (inData) {
          const end = buffer.indexOf("\r\n.\r\n");
          if (end === -1) return;
          buffer = buffer.slice(end + 5);
          inData = false;
          transcript.push("<message>");
          const after = script.afterData ?? Array.from({ length: recipients }, () => "250 2.0.0 saved");
          if (after === "drop") socket.destroy();
          else if (after !== "silent") socket.write(after.map((line) => `${line}\r\n`).join(""));
          continue;
        }
        const end = buffer.indexOf("\r\n");
        if (end === -1) return;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        transcript.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "LHLO") socket.write("250 scripted\r\n");
        else if (verb === "MAIL") socket.write(`${script.mail ?? "250 2.1.0 ok"}\r\n`);
        else if (verb === "RCPT") {
          recipients++;
          socket.write("250 2.1.5 ok\r\n");
        } else if (verb === "DATA") {
          inData = true;
          socket.write("354 go ahead\r\n");
        } else if (verb === "RSET") socket.write("250 2.0.0 ok\r\n");
        else if (verb === "QUIT") socket.end("221 2.0.0 bye\r\n");
        else socket.write("500 5.5.1 what?\r\n");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as { port: number }).port, transcript };
}

async function serveTo(port: number, hookTimeoutMs?: number): Promise<TestServer> {
  const server = await startTestServer({
    plugins: [claimRecipients(), lmtp({ host: "127.0.0.1", port })],
    ...(hookTimeoutMs ? { config: { limits: { hookTimeoutMs } } } : {}),
  });
  cleanups.push(() => server.stop());
  return server;
}

async function reply(server: TestServer, to: string[] = ["alice@example.test"]): Promise<string> {
  return server.send({ to, raw: buildMessage() }).then(
    (result) => result.response,
    (error: SendError) => error.response ?? error.message,
  );
}

describe("answers of the LMTP server for the whole message", () => {
  it("a temporary refusal of MAIL FROM defers with its status", async () => {
    const peer = await scriptedLmtp({ mail: "452 4.3.1 Insufficient system storage" });
    const server = await serveTo(peer.port);
    expect(await reply(server, ["alice@example.test", "bob@example.test"])).toMatch(
      /^451 4\.3\.1 Delivery failed for now <alice@example\.test>: 452 4\.3\.1 Insufficient system storage$/,
    );
    expect(peer.transcript).not.toContain("<message>");
  });

  it("a permanent refusal of MAIL FROM rejects with its status", async () => {
    const peer = await scriptedLmtp({ mail: "550 5.7.1 Sender refused" });
    const server = await serveTo(peer.port);
    expect(await reply(server)).toMatch(
      /^550 5\.7\.1 Delivery failed <alice@example\.test>: 550 5\.7\.1 Sender refused$/,
    );
  });

  it("per-recipient answers after the message: LHLO, one RCPT each, the message once", async () => {
    const peer = await scriptedLmtp({ afterData: ["250 2.0.0 <alice> saved", "250 2.0.0 <bob> saved"] });
    const server = await serveTo(peer.port);
    expect(await reply(server, ["alice@example.test", "bob@example.test"])).toMatch(/^250 /);
    expect(peer.transcript.slice(0, 5)).toEqual([
      "LHLO mx.test",
      "MAIL FROM:<sender@example.org>",
      "RCPT TO:<alice@example.test>",
      "RCPT TO:<bob@example.test>",
      "DATA",
    ]);
    expect(peer.transcript.filter((line) => line === "<message>")).toHaveLength(1);
  });
});

describe("connection failures", () => {
  it("a connection lost after the message, before the replies → 451 4.4.2", async () => {
    const peer = await scriptedLmtp({ afterData: "drop" });
    const server = await serveTo(peer.port);
    expect(await reply(server)).toMatch(/^451 4\.4\.2 Connection to the mailbox server broke during delivery/);
  });

  it("a server that never answers the message → core's deadline, 451 4.4.3", async () => {
    const peer = await scriptedLmtp({ afterData: "silent" });
    const server = await serveTo(peer.port, 1500);
    expect(await reply(server)).toMatch(/^451 4\.4\.3 /);
  });

  it("nobody listening on the port → 451 4.4.1", async () => {
    const peer = await scriptedLmtp({});
    await cleanups.pop()!(); // close the peer: its port is now free
    const server = await serveTo(peer.port);
    expect(await reply(server)).toMatch(/^451 4\.4\.1 Mailbox server not reachable/);
  });
});
