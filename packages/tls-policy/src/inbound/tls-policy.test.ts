// The inbound TLS policy over real SMTP and real TLS on loopback.
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { accept, type Plugin, type ServerConfigInput } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  createTestCertificate,
  type MemoryQueue,
  memoryQueue,
  type RawSmtpClient,
  startTestServer,
  type TestCertificate,
  type TestServer,
} from "@postern/testing";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import tlsPolicy, { deliveryTlsRequest, tlsFacts } from "../index.ts";

let cert: TestCertificate;
let server: TestServer | undefined;
const clients: RawSmtpClient[] = [];
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  cert = await createTestCertificate(["mx.test", "localhost"]);
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const socket of sockets.splice(0)) socket.destroy();
  await server?.stop();
  server = undefined;
});

/** Accepts any credentials: the policy under test decides before it. */
const anyPassword: Plugin = { name: "test:any-password", hooks: { auth: () => accept() } };

async function serve(
  policy: Plugin,
  listeners: NonNullable<ServerConfigInput["listeners"]>,
): Promise<{ target: TestServer; queue: MemoryQueue }> {
  const queue = memoryQueue();
  server = await startTestServer({
    plugins: [policy, anyPassword, claimRecipients(), queue.plugin],
    config: { listeners, tlsReload: { onSighup: false, watchFiles: false } },
  });
  return { target: server, queue };
}

const tlsListener = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  port: 1,
  tls: "starttls" as const,
  certificate: cert.certificate,
  key: cert.key,
  ...extra,
});

async function open(target: TestServer, port = target.port): Promise<RawSmtpClient> {
  const client = await target.connect({ port });
  clients.push(client);
  expect((await client.read()).code).toBe(220);
  expect((await client.command("EHLO client.test")).code).toBe(250);
  return client;
}

async function sendMessage(client: RawSmtpClient, from: string, raw: Buffer): Promise<number> {
  expect((await client.command(`MAIL FROM:${from}`)).code).toBe(250);
  expect((await client.command("RCPT TO:<user@localhost>")).code).toBe(250);
  expect((await client.command("DATA")).code).toBe(354);
  client.write(Buffer.concat([raw, Buffer.from(".\r\n")]));
  return (await client.read()).code;
}

describe("TLS before MAIL and AUTH", () => {
  it("refuses MAIL in clear with 530 5.7.0 on a chosen listener, not on the others", async () => {
    const { target } = await serve(tlsPolicy({ requireTls: ["strict"] }), [
      tlsListener("strict"),
      tlsListener("opportunistic"),
    ]);
    const [strictPort, openPort] = target.ports as [number, number];

    const strict = await open(target, strictPort);
    expect(await strict.command("MAIL FROM:<a@example.org>")).toMatchObject({ code: 530, enhanced: "5.7.0" });
    await strict.startTls();
    expect((await strict.command("EHLO client.test")).code).toBe(250);
    expect((await strict.command("MAIL FROM:<a@example.org>")).code).toBe(250);

    const opportunistic = await open(target, openPort);
    expect((await opportunistic.command("MAIL FROM:<a@example.org>")).code).toBe(250);
  });

  it("selects listeners by port too, or all with true", async () => {
    const byPort = await serve(tlsPolicy({ requireTls: true }), [tlsListener("any")]);
    const client = await open(byPort.target);
    expect((await client.command("MAIL FROM:<a@example.org>")).code).toBe(530);
  });

  it("refuses AUTH in clear with 538 5.7.11, even where the listener allows it", async () => {
    const { target } = await serve(tlsPolicy({ requireTls: ["submission"] }), [
      tlsListener("submission", { auth: "optional", allowInsecureAuth: true }),
    ]);
    const client = await open(target);
    const credentials = Buffer.from("\0alice@example.org\0secret").toString("base64");
    expect(await client.command(`AUTH PLAIN ${credentials}`)).toMatchObject({ code: 538, enhanced: "5.7.11" });
    await client.startTls();
    await client.command("EHLO client.test");
    expect((await client.command(`AUTH PLAIN ${credentials}`)).code).toBe(235);
  });

  it("discards commands pipelined behind STARTTLS", async () => {
    const { target, queue } = await serve(tlsPolicy({ requireTls: ["strict"] }), [tlsListener("strict")]);
    const client = await open(target);
    client.write("STARTTLS\r\nMAIL FROM:<injected@example.org>\r\nRCPT TO:<user@localhost>\r\nDATA\r\n");
    expect((await client.read()).code).toBe(220);
    const secure = await upgradeInPlace(client);
    expect((await secure.command("EHLO client.test")).code).toBe(250);
    // Had the injected commands run, RCPT would be accepted (or MAIL would be "nested").
    expect((await secure.command("RCPT TO:<user@localhost>")).code).toBe(503);
    expect((await secure.command("MAIL FROM:<real@example.org>")).code).toBe(250);
    expect(queue.messages).toHaveLength(0);
  });
});

describe("TLS facts", () => {
  it("records protocol, cipher, SNI and listener, and the Received header says ESMTPSA", async () => {
    const { target, queue } = await serve(tlsPolicy(), [tlsListener("submission", { auth: "required" })]);
    const client = await open(target);
    await client.startTls({ servername: "mx.test" });
    await client.command("EHLO client.test");
    expect((await client.command(`AUTH PLAIN ${Buffer.from("\0bob\0pw").toString("base64")}`)).code).toBe(235);
    expect(await sendMessage(client, "<bob@example.org>", buildMessage())).toBe(250);
    const stored = queue.messages[0]!;
    expect(stored.transaction.session.results.get(tlsFacts)).toEqual({
      protocol: "TLSv1.3",
      cipher: expect.stringMatching(/^TLS_/),
      servername: "mx.test",
      clientCertificate: undefined,
      listener: "submission",
    });
    expect(stored.bytes.toString()).toMatch(
      /\(using TLSv1\.3 with cipher TLS_\w+\)\r\n\tby mx\.test \(Postern\) with ESMTPSA id/,
    );
  });

  it("records nothing for a session in clear", async () => {
    const { target, queue } = await serve(tlsPolicy(), [tlsListener("mx")]);
    const client = await open(target);
    expect(await sendMessage(client, "<a@example.org>", buildMessage())).toBe(250);
    expect(queue.messages[0]!.transaction.session.results.get(tlsFacts)).toBeUndefined();
    expect(queue.messages[0]!.bytes.toString()).toMatch(/with ESMTP id/);
  });
});

describe("REQUIRETLS (RFC 8689)", () => {
  it("is refused in clear and carried on the transaction over TLS", async () => {
    const { target, queue } = await serve(tlsPolicy(), [tlsListener("mx")]);
    const client = await open(target);
    const plain = await client.command("EHLO client.test");
    expect(plain.lines).not.toContain("REQUIRETLS");
    expect((await client.command("MAIL FROM:<a@example.org> REQUIRETLS")).code).toBe(530);

    await client.startTls();
    expect((await client.command("EHLO client.test")).lines).toContain("REQUIRETLS");
    expect(await sendMessage(client, "<a@example.org> REQUIRETLS", buildMessage())).toBe(250);
    const transaction = queue.messages[0]!.transaction;
    expect(transaction.requireTls).toBe(true);
    expect(transaction.results.get(deliveryTlsRequest)).toEqual({ requireTls: true, ignoreRecipientTlsPolicy: false });
  });

  it('records "TLS-Required: No", and ignores it when REQUIRETLS was given', async () => {
    const { target, queue } = await serve(tlsPolicy(), [tlsListener("mx")]);
    const raw = buildMessage({ headers: { "TLS-Required": " No " } });
    const client = await open(target);
    expect(await sendMessage(client, "<a@example.org>", raw)).toBe(250);
    expect(queue.messages[0]!.transaction.results.get(deliveryTlsRequest)).toEqual({
      requireTls: false,
      ignoreRecipientTlsPolicy: true,
    });

    await client.startTls();
    await client.command("EHLO client.test");
    expect(await sendMessage(client, "<a@example.org> REQUIRETLS", raw)).toBe(250);
    expect(queue.messages[1]!.transaction.results.get(deliveryTlsRequest)).toEqual({
      requireTls: true,
      ignoreRecipientTlsPolicy: false,
    });
  });
});

describe("options", () => {
  it("names a bad option in one line", () => {
    expect(() => tlsPolicy({ requireTls: "yes" as never })).toThrow(
      /^@postern\/tls-policy\.requireTls: expected true, false, or a list of listener names and ports/,
    );
    expect(() => tlsPolicy({ requireTLS: true } as never)).toThrow(/^@postern\/tls-policy\.requireTLS: /);
  });
});

/** TLS on the client's socket without sending STARTTLS (it was already written, pipelined). */
async function upgradeInPlace(client: RawSmtpClient) {
  const socket = tlsConnect({ socket: client.socket, rejectUnauthorized: false });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  let buffer = "";
  const waiting: ((code: number) => void)[] = [];
  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    for (let match = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})[^\r\n]*\r\n/.exec(buffer); match; ) {
      buffer = buffer.slice(match[0].length);
      waiting.shift()?.(Number(match[1]));
      match = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3})[^\r\n]*\r\n/.exec(buffer);
    }
  });
  return {
    command(line: string): Promise<{ code: number }> {
      return new Promise((resolve) => {
        waiting.push((code) => resolve({ code }));
        socket.write(`${line}\r\n`);
      });
    },
  };
}
