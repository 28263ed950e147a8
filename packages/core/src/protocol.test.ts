// RFC 5321 behaviour over raw sockets: command sequence, limits, SMTP smuggling, STARTTLS
// injection, byte-exact storage.
import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  claimRecipients,
  connectSmtp,
  createTestCertificate,
  type MemoryQueue,
  memoryQueue,
  type RawSmtpClient,
  startTestServer,
  type TestServer,
} from "../../testing/src/index.ts";
import type { ServerConfigInput } from "./index.ts";

let server: TestServer | undefined;
const clients: RawSmtpClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.stop();
  server = undefined;
});

async function serve(config: Partial<ServerConfigInput> = {}): Promise<{ target: TestServer; queue: MemoryQueue }> {
  const queue = memoryQueue();
  server = await startTestServer({ plugins: [claimRecipients(), queue.plugin], config });
  return { target: server, queue };
}

async function open(target: TestServer, greet = true): Promise<RawSmtpClient> {
  const client = await connectSmtp(target.port);
  clients.push(client);
  expect((await client.read()).code).toBe(220);
  if (greet) expect((await client.command("EHLO client.test")).code).toBe(250);
  return client;
}

describe("EHLO", () => {
  it("advertises the extensions of the contract", async () => {
    const { target } = await serve();
    const client = await connectSmtp(target.port);
    clients.push(client);
    await client.read();
    const reply = await client.command("EHLO client.test");
    for (const extension of ["PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN", "SIZE 26214400"]) {
      expect(reply.lines).toContain(extension);
    }
    expect(reply.lines).not.toContain("STARTTLS");
    expect(reply.lines.some((line) => line.startsWith("AUTH"))).toBe(false);
  });
});

describe("command sequence and limits", () => {
  it("answers sequence errors with 503 5.5.1", async () => {
    const { target } = await serve();
    const client = await open(target, false);
    expect(await client.command("MAIL FROM:<a@b.test>")).toMatchObject({ code: 503 });
    await client.command("EHLO client.test");
    expect(await client.command("RCPT TO:<a@localhost>")).toMatchObject({ code: 503, enhanced: "5.5.1" });
    expect(await client.command("DATA")).toMatchObject({ code: 503, enhanced: "5.5.1" });
    await client.command("MAIL FROM:<a@b.test>");
    expect(await client.command("MAIL FROM:<a@b.test>")).toMatchObject({ code: 503, enhanced: "5.5.1" });
    expect(await client.command("DATA")).toMatchObject({ code: 503, enhanced: "5.5.1" });
  });

  it("answers unknown commands and bad syntax with 500 / 501", async () => {
    const { target } = await serve();
    const client = await open(target);
    expect(await client.command("FROB")).toMatchObject({ code: 500, enhanced: "5.5.2" });
    expect(await client.command("MAIL FROM:<not an address>")).toMatchObject({ code: 501 });
    expect(await client.command("RSET")).toMatchObject({ code: 250 });
    expect(await client.command("NOOP")).toMatchObject({ code: 250 });
  });

  it("refuses recipients past the limit with 452 and keeps the accepted ones", async () => {
    const { target, queue } = await serve({ limits: { maxRecipients: 2 } });
    const client = await open(target);
    await client.command("MAIL FROM:<a@b.test>");
    expect((await client.command("RCPT TO:<one@localhost>")).code).toBe(250);
    expect((await client.command("RCPT TO:<two@localhost>")).code).toBe(250);
    expect(await client.command("RCPT TO:<three@localhost>")).toMatchObject({ code: 452 });
    expect((await client.command("DATA")).code).toBe(354);
    client.write(Buffer.concat([buildMessage(), Buffer.from(".\r\n")]));
    expect((await client.read()).code).toBe(250);
    expect(queue.messages[0]!.recipients).toEqual(["one@localhost", "two@localhost"]);
  });

  it("refuses a declared SIZE over the limit at MAIL FROM and an actual one at end of DATA", async () => {
    const { target, queue } = await serve({ limits: { maxMessageSize: 2048 } });
    const client = await open(target);
    expect(await client.command("MAIL FROM:<a@b.test> SIZE=4096")).toMatchObject({ code: 552 });
    await client.command("MAIL FROM:<a@b.test>");
    await client.command("RCPT TO:<one@localhost>");
    await client.command("DATA");
    client.write(Buffer.concat([buildMessage({ text: "x".repeat(70).concat("\n").repeat(60) }), Buffer.from(".\r\n")]));
    expect(await client.read()).toMatchObject({ code: 552, text: "5.3.4 Message exceeds the maximum message size" });
    expect(queue.messages).toHaveLength(0);
    expect((await client.command("MAIL FROM:<a@b.test>")).code).toBe(250);
  });

  it("refuses a line longer than 998 octets", async () => {
    const { target, queue } = await serve();
    const client = await open(target);
    await client.command("MAIL FROM:<a@b.test>");
    await client.command("RCPT TO:<one@localhost>");
    await client.command("DATA");
    client.write(`Subject: long\r\n\r\n${"y".repeat(999)}\r\n.\r\n`);
    expect(await client.read()).toMatchObject({ code: 554, enhanced: "5.6.0" });
    await client.command("MAIL FROM:<a@b.test>");
    await client.command("RCPT TO:<one@localhost>");
    await client.command("DATA");
    client.write(`Subject: long\r\n\r\n${"y".repeat(998)}\r\n.\r\n`);
    expect((await client.read()).code).toBe(250);
    expect(queue.messages).toHaveLength(1);
  });
});

describe("SMTP smuggling", () => {
  // Each variant hides a second transaction behind a line end that is not CRLF.CRLF. Whatever the
  // receiving side thinks, Postern must never store a second message.
  const variants = {
    "\\n.\\n": "\n.\n",
    "\\r.\\r": "\r.\r",
    "\\n.\\r\\n": "\n.\r\n",
    "\\r\\n.\\r": "\r\n.\r",
    "\\r.\\r\\n": "\r.\r\n",
  };
  for (const [label, fakeEnd] of Object.entries(variants)) {
    it(`never sees a second message behind ${label}`, async () => {
      const { target, queue } = await serve();
      const client = await open(target);
      await client.command("MAIL FROM:<alice@example.org>");
      await client.command("RCPT TO:<one@localhost>");
      await client.command("DATA");
      const smuggled =
        `Subject: first\r\n\r\nfirst body${fakeEnd}MAIL FROM:<ceo@example.org>\r\n` +
        "RCPT TO:<two@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\n";
      client.write(smuggled);
      const reply = await client.read();
      expect(reply).toMatchObject({ code: 554, enhanced: "5.6.0" });
      expect(await client.command("NOOP")).toMatchObject({ code: 250 });
      expect(queue.messages).toHaveLength(0);
    });
  }

  it("with the normalize policy stores one message whose lines all end in CRLF", async () => {
    const { target, queue } = await serve({ limits: { bareNewlines: "normalize" } });
    const client = await open(target);
    await client.command("MAIL FROM:<alice@example.org>");
    await client.command("RCPT TO:<one@localhost>");
    await client.command("DATA");
    client.write("Subject: first\r\n\r\nbody\n.\nMAIL FROM:<ceo@example.org>\r\nbare\rcr\r\n.\r\n");
    expect((await client.read()).code).toBe(250);
    expect(await client.command("NOOP")).toMatchObject({ code: 250 });
    expect(queue.messages).toHaveLength(1);
    const text = queue.messages[0]!.bytes.toString("latin1");
    expect(text).not.toMatch(/[^\r]\n|\r[^\n]/);
    expect(text.endsWith("body\r\n.\r\nMAIL FROM:<ceo@example.org>\r\nbare\r\ncr\r\n")).toBe(true);
  });
});

describe("bytes", () => {
  it("stores dot-stuffed lines and 8-bit bytes exactly", async () => {
    const { target, queue } = await serve();
    const client = await open(target);
    await client.command("MAIL FROM:<a@b.test> BODY=8BITMIME");
    await client.command("RCPT TO:<one@localhost>");
    await client.command("DATA");
    const original = Buffer.concat([
      Buffer.from("Subject: bytes\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n"),
      Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0d, 0x0a, 0xff, 0x80, 0x0d, 0x0a]),
      Buffer.from(".leading dot\r\n..two dots\r\nlast\r\n"),
    ]);
    // On the wire every line starting with "." gets one more (RFC 5321 §4.5.2).
    const wire = Buffer.from(original.toString("latin1").replace(/^\./gm, ".."), "latin1");
    client.write(Buffer.concat([wire, Buffer.from(".\r\n")]));
    expect((await client.read()).code).toBe(250);
    const stored = queue.messages[0]!.bytes;
    expect(stored.subarray(stored.length - original.length).equals(original)).toBe(true);
  });

  it("spools a large message to disk and lets every reader stream it again", async () => {
    const readers: number[] = [];
    const twice = {
      name: "twice",
      hooks: {
        async data(_tx: unknown, message: import("./index.ts").Message) {
          for (let i = 0; i < 2; i++) {
            let bytes = 0;
            for await (const chunk of message.original()) bytes += (chunk as Buffer).length;
            readers.push(bytes);
          }
        },
      },
    };
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [twice, claimRecipients(), queue.plugin],
      config: { limits: { memoryThreshold: 64 * 1024 } },
    });
    const raw = buildMessage({ text: "z".repeat(76).concat("\n").repeat(4000) });
    await server.send({ to: "one@localhost", raw });
    expect(readers).toEqual([raw.length, raw.length]);
    expect(queue.messages[0]!.bytes.subarray(-raw.length).equals(raw)).toBe(true);
  });
});

describe("STARTTLS", () => {
  it("discards commands pipelined behind STARTTLS (no injection)", async () => {
    const cert = await createTestCertificate();
    const { target, queue } = await serve({
      listeners: [{ port: 1, tls: "starttls", certificate: cert.certificate, key: cert.key }],
    });
    const client = await connectSmtp(target.port);
    clients.push(client);
    await client.read();
    expect((await client.command("EHLO client.test")).lines).toContain("STARTTLS");
    client.write("STARTTLS\r\nMAIL FROM:<injected@example.org>\r\nRCPT TO:<one@localhost>\r\n");
    expect((await client.read()).code).toBe(220);
    // Hand the socket to TLS the way the client's own startTls would, then check the state.
    const { connect } = await import("node:tls");
    const secure = connect({ socket: client.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", () => resolve());
      secure.once("error", reject);
    });
    const tlsClient = await wrapTls(secure);
    const ehlo = await tlsClient.command("EHLO client.test");
    expect(ehlo.code).toBe(250);
    expect(ehlo.lines).not.toContain("STARTTLS");
    // Had the injected MAIL FROM run, this would be a 503 "nested MAIL" or a 250 for RCPT.
    expect((await tlsClient.command("RCPT TO:<one@localhost>")).code).toBe(503);
    expect((await tlsClient.command("MAIL FROM:<real@example.org>")).code).toBe(250);
    expect(queue.messages).toHaveLength(0);
    secure.destroy();
  });

  it("records TLS in the Received header (ESMTPS)", async () => {
    const cert = await createTestCertificate();
    const { target, queue } = await serve({
      listeners: [{ port: 1, tls: "starttls", certificate: cert.certificate, key: cert.key }],
    });
    await target.send({ to: "one@localhost", raw: buildMessage(), requireTls: true });
    expect(queue.messages[0]!.bytes.toString()).toMatch(
      /\(using TLSv1\.3 with cipher [A-Z0-9_]+\)\r\n\tby mx\.test \(Postern\) with ESMTPS id/,
    );
  });

  it("carries RFC 8689 REQUIRETLS on the transaction", async () => {
    const cert = await createTestCertificate();
    let requireTls: boolean | undefined;
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [
        claimRecipients(),
        {
          name: "watch",
          hooks: {
            mailFrom: (tx) => {
              requireTls = tx.requireTls;
            },
          },
        },
        queue.plugin,
      ],
      config: { listeners: [{ port: 1, tls: "starttls", certificate: cert.certificate, key: cert.key }] },
    });
    await server.send({ to: "one@localhost", raw: buildMessage(), requireTls: true, requireTlsExtension: true });
    expect(requireTls).toBe(true);
  });

  it("serves implicit TLS", async () => {
    const cert = await createTestCertificate();
    const { target, queue } = await serve({
      listeners: [{ port: 1, tls: "implicit", certificate: cert.certificate, key: cert.key }],
    });
    await target.send({ to: "one@localhost", raw: buildMessage(), secure: true });
    expect(queue.messages).toHaveLength(1);
  });
});

describe("connection handling", () => {
  it("answers an early talker with 421 when the listener has a greeting delay", async () => {
    const { target } = await serve({ listeners: [{ port: 1, greetingDelayMs: 300 }] });
    const client = await connectSmtp(target.port);
    clients.push(client);
    client.write("EHLO too.early\r\n");
    const reply = await client.read();
    expect(reply.code).toBe(421);
    expect(reply.text).toMatch(/talk too soon/);
  });

  it("takes the client address from a PROXY header sent by a trusted peer", async () => {
    let remote: string | undefined;
    server = await startTestServer({
      plugins: [
        {
          name: "watch",
          hooks: {
            connect: (s) => {
              remote = s.remoteAddress;
            },
          },
        },
      ],
      config: { listeners: [{ port: 1, proxy: ["127.0.0.1"] }] },
    });
    const client = await connectSmtp(server.port);
    clients.push(client);
    client.write("PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n");
    expect((await client.read()).code).toBe(220);
    expect(remote).toBe("203.0.113.7");
  });
});

/** A raw client over an already established TLS socket. */
async function wrapTls(socket: import("node:tls").TLSSocket) {
  let buffer = "";
  const waiting: ((reply: { code: number; lines: string[] }) => void)[] = [];
  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    for (;;) {
      const match = /^((?:\d{3}-[^\r\n]*\r\n)*)(\d{3})(?: ([^\r\n]*))?\r\n/.exec(buffer);
      if (!match) break;
      buffer = buffer.slice(match[0].length);
      const lines = match[0]
        .split("\r\n")
        .filter(Boolean)
        .map((line) => line.slice(4));
      waiting.shift()?.({ code: Number(match[2]), lines });
    }
  });
  return {
    command(line: string) {
      return new Promise<{ code: number; lines: string[] }>((resolve) => {
        waiting.push(resolve);
        socket.write(`${line}\r\n`);
      });
    },
  };
}
