// @postern/lmtp against a scripted LMTP peer on a raw socket, for the answers Dovecot won't give
// on demand: a refused MAIL FROM, a connection lost after the message, a server that never answers.
import { createServer, type Server, type Socket } from "node:net";
import { buildMessage, claimRecipients, type SendError, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it, vi } from "vitest";
import lmtp, { type LmtpOptions } from "./index.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type AfterData = string[] | "drop" | "silent";

interface Script {
  /** Reply to MAIL FROM; a function gets the transaction's number on its connection (1, 2 …). */
  mail?: string | ((transactionOnConnection: number) => string);
  /** After the final dot: one reply per recipient, "drop" to close without a word, or "silent". */
  afterData?: AfterData | ((transactionOnConnection: number) => AfterData);
  /** Close a connection without a word when MAIL FROM comes on it after this many transactions. */
  dropMailAfter?: number;
  /** Close every connection this long after its last reply (an LMTP server's idle timeout). */
  idleCloseMs?: number;
}

interface Peer {
  port: number;
  /**
   * Every line received, "<message>" for a message, "<close>" when the client closed, "<idle
   * close>" when the server closed an idle session.
   */
  transcript: string[];
  /** Lines received per connection, in the order the connections came. */
  sessions: string[][];
  /** Most connections open at the same time. */
  maxOpen: number;
  /** Close every open connection now, without a word (the server timing out idle clients). */
  dropAll(): void;
}

async function scriptedLmtp(script: Script): Promise<Peer> {
  const transcript: string[] = [];
  const sessions: string[][] = [];
  const sockets = new Set<Socket>();
  const peer: Peer = {
    port: 0,
    transcript,
    sessions,
    maxOpen: 0,
    dropAll: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    peer.maxOpen = Math.max(peer.maxOpen, sockets.size);
    const lines: string[] = [];
    sessions.push(lines);
    const record = (line: string) => {
      transcript.push(line);
      lines.push(line);
    };
    socket.on("close", () => sockets.delete(socket));
    socket.on("end", () => record("<close>"));
    socket.on("error", () => undefined);
    let buffer = "";
    let inData = false;
    let recipients = 0;
    let transactions = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    const reply = (text: string) => {
      socket.write(text);
      if (script.idleCloseMs === undefined) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        record("<idle close>");
        socket.destroy();
      }, script.idleCloseMs);
    };
    reply("220 scripted LMTP\r\n");
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("latin1");
      for (;;) {
        if (inData) {
          const end = buffer.indexOf("\r\n.\r\n");
          if (end === -1) return;
          buffer = buffer.slice(end + 5);
          inData = false;
          record("<message>");
          const scripted = typeof script.afterData === "function" ? script.afterData(transactions) : script.afterData;
          const after = scripted ?? Array.from({ length: recipients }, () => "250 2.0.0 saved");
          recipients = 0;
          if (after === "drop") socket.destroy();
          else if (after !== "silent") reply(after.map((line) => `${line}\r\n`).join(""));
          continue;
        }
        const end = buffer.indexOf("\r\n");
        if (end === -1) return;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        record(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "LHLO") reply("250 scripted\r\n");
        else if (verb === "MAIL") {
          if (script.dropMailAfter !== undefined && transactions >= script.dropMailAfter) {
            socket.destroy();
            return;
          }
          transactions++;
          const mail = typeof script.mail === "function" ? script.mail(transactions) : script.mail;
          reply(`${mail ?? "250 2.1.0 ok"}\r\n`);
        } else if (verb === "RCPT") {
          recipients++;
          reply("250 2.1.5 ok\r\n");
        } else if (verb === "DATA") {
          inData = true;
          reply("354 go ahead\r\n");
        } else if (verb === "RSET") {
          recipients = 0;
          reply("250 2.0.0 ok\r\n");
        } else if (verb === "QUIT") socket.end("221 2.0.0 bye\r\n");
        else reply("500 5.5.1 what?\r\n");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  peer.port = (server.address() as { port: number }).port;
  return peer;
}

async function serveTo(
  port: number,
  hookTimeoutMs?: number,
  connections?: LmtpOptions["connections"],
): Promise<TestServer> {
  const server = await startTestServer({
    plugins: [claimRecipients(), lmtp({ host: "127.0.0.1", port, ...(connections ? { connections } : {}) })],
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

/** The commands of one session without the message lines. */
const commands = (session: string[]) => session.map((line) => line.split(":")[0]!);

describe("connection reuse", () => {
  it("sends several messages over one session: one LHLO, no RSET after a completed transaction", async () => {
    const peer = await scriptedLmtp({});
    const server = await serveTo(peer.port);
    for (let n = 0; n < 4; n++) expect(await reply(server)).toMatch(/^250 /);
    expect(peer.sessions).toHaveLength(1);
    expect(commands(peer.sessions[0]!)).toEqual([
      "LHLO mx.test",
      ...Array.from({ length: 4 }, () => ["MAIL FROM", "RCPT TO", "DATA", "<message>"]).flat(),
    ]);
  });

  it("sends RSET before the next transaction when one was refused before the message", async () => {
    // The first MAIL FROM is refused, later ones accepted.
    const peer = await scriptedLmtp({ mail: (n) => (n === 1 ? "452 4.3.1 Try later" : "250 2.1.0 ok") });
    const server = await serveTo(peer.port);
    expect(await reply(server)).toMatch(/^451 4\.3\.1 /);
    expect(await reply(server)).toMatch(/^250 /);
    expect(peer.sessions).toHaveLength(1);
    expect(commands(peer.sessions[0]!)).toEqual([
      "LHLO mx.test",
      "MAIL FROM",
      "RSET",
      "MAIL FROM",
      "RCPT TO",
      "DATA",
      "<message>",
    ]);
  });

  it("keeps per-recipient replies apart across transactions on one session", async () => {
    const peer = await scriptedLmtp({
      afterData: (n) => (n === 1 ? ["250 2.0.0 <alice> saved", "452 4.2.2 <bob> mailbox full"] : ["250 2.0.0 saved"]),
    });
    const server = await serveTo(peer.port);
    expect(await reply(server, ["alice@example.test", "bob@example.test"])).toMatch(
      /^450 4\.2\.2 Delivery failed for now <bob@example\.test>: 452 4\.2\.2 <bob> mailbox full; delivered to <alice@example\.test>/,
    );
    expect(await reply(server, ["carol@example.test"])).toMatch(/^250 /);
    expect(peer.sessions).toHaveLength(1);
  });

  it("opens a new session when the server closed the idle one", async () => {
    const peer = await scriptedLmtp({ idleCloseMs: 50 });
    const server = await serveTo(peer.port);
    expect(await reply(server)).toMatch(/^250 /);
    // The server times the session out; the client's pool drops it (or, if the close is still in
    // flight when the next MAIL FROM goes out, runs the transaction again on a new session).
    await vi.waitFor(() => expect(peer.transcript.at(-1)).toBe("<idle close>"));
    expect(await reply(server)).toMatch(/^250 /);
    expect(peer.sessions).toHaveLength(2);
  });

  it("runs the transaction again on a new session when a reused one is gone before the message", async () => {
    // The server drops the session the moment the second MAIL FROM arrives on it (its idle
    // timeout firing just then): nothing was delivered, so the transaction may run again.
    const peer = await scriptedLmtp({ dropMailAfter: 1 });
    const server = await serveTo(peer.port);
    expect(await reply(server)).toMatch(/^250 /);
    expect(await reply(server)).toMatch(/^250 /);
    expect(peer.sessions).toHaveLength(2);
    expect(peer.transcript.filter((line) => line === "<message>")).toHaveLength(2);
  });

  it("never resends a message once it was on the wire: a reused session cut after it → 451 4.4.2", async () => {
    const peer = await scriptedLmtp({ afterData: (n) => (n === 1 ? ["250 2.0.0 saved"] : "drop") });
    const server = await serveTo(peer.port);
    expect(await reply(server)).toMatch(/^250 /);
    expect(await reply(server)).toMatch(/^451 4\.4\.2 /);
    expect(peer.transcript.filter((line) => line === "<message>")).toHaveLength(2);
  });

  it("opens at most `max` sessions; more deliveries at once wait for one", async () => {
    const peer = await scriptedLmtp({});
    const server = await serveTo(peer.port, undefined, { max: 2 });
    const replies = await Promise.all(Array.from({ length: 8 }, () => reply(server)));
    for (const text of replies) expect(text).toMatch(/^250 /);
    expect(peer.maxOpen).toBeLessThanOrEqual(2);
    expect(peer.sessions.length).toBeLessThanOrEqual(2);
    expect(peer.transcript.filter((line) => line === "<message>")).toHaveLength(8);
  });

  it("closes a session with QUIT after maxMessages, and an idle one after idleTimeoutMs", async () => {
    const peer = await scriptedLmtp({});
    const server = await serveTo(peer.port, undefined, { maxMessages: 2, idleTimeoutMs: 100 });
    for (let n = 0; n < 3; n++) expect(await reply(server)).toMatch(/^250 /);
    expect(peer.sessions).toHaveLength(2);
    expect(peer.sessions[0]!.slice(-2)).toEqual(["QUIT", "<close>"]);
    await vi.waitFor(() => expect(peer.sessions[1]!.slice(-2)).toEqual(["QUIT", "<close>"]));
    expect(commands(peer.sessions[1]!).filter((line) => line === "MAIL FROM")).toHaveLength(1);
  });

  it("one connection per message with maxMessages: 1", async () => {
    const peer = await scriptedLmtp({});
    const server = await serveTo(peer.port, undefined, { maxMessages: 1 });
    for (let n = 0; n < 3; n++) expect(await reply(server)).toMatch(/^250 /);
    expect(peer.sessions).toHaveLength(3);
  });

  it("closes its sessions when the server stops", async () => {
    const peer = await scriptedLmtp({});
    const server = await serveTo(peer.port);
    expect(await reply(server)).toMatch(/^250 /);
    await server.stop();
    await vi.waitFor(() => expect(peer.sessions[0]!.slice(-2)).toEqual(["QUIT", "<close>"]));
  });
});
