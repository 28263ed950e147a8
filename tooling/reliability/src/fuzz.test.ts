// Property-based fuzzing of the real server over loopback: the command parser path, the DATA
// stream and TLS handshakes get random bytes, CR/LF mixes, overlong lines, NULs, pipelined
// garbage and cut-off ClientHellos. Whatever arrives, the server must not crash, must answer or
// close, must keep its memory bounded, and must store nothing malformed.
//   pnpm --filter @postern/reliability test:fuzz      (FUZZ_RUNS=n scales the number of cases)
import { createServer as createTcpServer, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import {
  claimRecipients,
  createTestCertificate,
  type MemoryQueue,
  memoryQueue,
  sendMail,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { megabytes, settledRss } from "./support/memory.ts";
import { openPeer, type Peer, peerOn } from "./support/raw-exchange.ts";
import { malformation } from "./support/well-formed.ts";

const runs = (base: number) => Math.max(1, Math.round(base * Number(process.env.FUZZ_RUNS_SCALE ?? 1)));
const replyLine = /^[2-5]\d\d(?:[ -]|$)/;
/** The catch-all answer for an exception inside the server: it must never be provoked. */
const internalError = /Temporary local problem/;

let server: TestServer;
let queue: MemoryQueue;
let implicitPort: number;
let startTlsPort: number;
let plainPort: number;
let rssAtStart: number;

beforeAll(async () => {
  const certificate = await createTestCertificate(["mx.test", "localhost"]);
  queue = memoryQueue();
  server = await startTestServer({
    plugins: [claimRecipients(), queue.plugin],
    config: {
      listeners: [
        // A short idle timeout so stalled handshakes and half-sent commands end within the test.
        { address: "127.0.0.1", port: 1, socketTimeoutMs: 1500 },
        { address: "127.0.0.1", port: 1, tls: "starttls", ...tlsFiles(certificate), socketTimeoutMs: 1500 },
        { address: "127.0.0.1", port: 1, tls: "implicit", ...tlsFiles(certificate), socketTimeoutMs: 1500 },
      ],
      limits: { maxMessageSize: "1MB" },
    },
  });
  [plainPort, startTlsPort, implicitPort] = server.ports as [number, number, number];
  rssAtStart = await settledRss();
});

afterAll(async () => {
  await server?.stop();
});

function tlsFiles(certificate: { certificate: string; key: string }) {
  return { certificate: certificate.certificate, key: certificate.key };
}

/** Every stored message so far is well-formed; returns how many there are. */
function expectStoredWellFormed(): number {
  for (const message of queue.messages) {
    expect(malformation(message.bytes), `stored message ${message.queueId}`).toBeUndefined();
  }
  return queue.messages.length;
}

/** The server still does its job: a clean message over each listener is accepted and stored. */
async function expectHealthy(): Promise<void> {
  const before = queue.messages.length;
  const raw = "Subject: health\r\n\r\nstill here\r\n";
  await sendMail({ port: plainPort, to: "user@mx.test", raw, startTls: false });
  await sendMail({ port: startTlsPort, to: "user@mx.test", raw });
  await sendMail({ port: implicitPort, to: "user@mx.test", raw, secure: true });
  expect(queue.messages.length).toBe(before + 3);
}

function expectNoServerErrors(): void {
  const errors = server.logs.filter((record) => record.level >= 50);
  expect(errors, JSON.stringify(errors.slice(0, 3))).toEqual([]);
}

/** Splits `bytes` into pieces of the given sizes (the rest goes in one last piece). */
function pieces(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (const size of sizes) {
    if (offset >= bytes.length) break;
    out.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  if (offset < bytes.length) out.push(bytes.subarray(offset));
  return out;
}

async function writeAll(peer: Peer, parts: Buffer[]): Promise<void> {
  for (const part of parts) {
    await peer.write(part);
    // Let some pieces arrive as separate reads and others coalesce.
    if (part.length % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

// Arbitraries --------------------------------------------------------------------------------

const lineEnd = fc.oneof(
  { weight: 8, arbitrary: fc.constant("\r\n") },
  { weight: 1, arbitrary: fc.constantFrom("\n", "\r", "\r\r\n", "\n\r", "") },
);
const latin1 = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");
const randomBytes = (maxLength: number) => fc.uint8Array({ maxLength }).map(latin1);
const withNul = fc.string({ maxLength: 40 }).map((text) => `${text}\0${text}`);

const command = fc.constantFrom(
  "EHLO client.test",
  "HELO client.test",
  "EHLO",
  "EHLO \0bad",
  "MAIL FROM:<sender@example.org>",
  "MAIL FROM:<>",
  "MAIL FROM:<sender@example.org> SIZE=99999999999",
  "MAIL FROM:<sender@example.org> BODY=8BITMIME SMTPUTF8",
  "MAIL FROM:sender@example.org",
  "RCPT TO:<user@mx.test>",
  "RCPT TO:<user@mx.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user@mx.test",
  "RCPT TO:<>",
  "RCPT TO:<@route:user@mx.test>",
  "DATA",
  "RSET",
  "NOOP",
  "VRFY user",
  "EXPN list",
  "HELP",
  "STARTTLS",
  "AUTH PLAIN AGEAYg==",
  "AUTH LOGIN",
  "BDAT 5 LAST",
  "XCLIENT ADDR=1.2.3.4",
  "PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
  "GET / HTTP/1.1",
  ".",
);
const commandPiece = fc.oneof(
  { weight: 6, arbitrary: command },
  { weight: 2, arbitrary: randomBytes(300) },
  { weight: 1, arbitrary: withNul },
  { weight: 1, arbitrary: fc.integer({ min: 500, max: 70_000 }).map((length) => "X".repeat(length)) },
);
const commandScript = fc
  .array(fc.tuple(commandPiece, lineEnd), { minLength: 1, maxLength: 25 })
  .map((parts) => Buffer.from(parts.map(([piece, end]) => piece + end).join(""), "latin1"));
const writeSizes = fc.array(fc.integer({ min: 1, max: 512 }), { maxLength: 12 });

const printable = fc.string({ maxLength: 120 });
const bodyLine = fc.oneof(
  { weight: 6, arbitrary: printable },
  { weight: 1, arbitrary: fc.integer({ min: 990, max: 1006 }).map((length) => "L".repeat(length)) },
  { weight: 1, arbitrary: fc.constantFrom(".", "..", ".hidden", "", " ", "\0", "From: x", "\t") },
  { weight: 1, arbitrary: randomBytes(200) },
  { weight: 1, arbitrary: withNul },
);
const messageBody = fc
  .tuple(fc.boolean(), fc.array(fc.tuple(bodyLine, lineEnd), { maxLength: 40 }))
  .map(
    ([headers, lines]) => (headers ? "Subject: fuzz\r\n\r\n" : "") + lines.map(([line, end]) => line + end).join(""),
  );

/** Dot-stuffing as a client does it (RFC 5321 §4.5.2); smtp-server removes a dot after any LF. */
const dotStuff = (body: string) => body.replace(/(^|\n)\./g, "$1..");

// Properties ---------------------------------------------------------------------------------

describe("fuzzing the command path", () => {
  it("answers every line it reads, closes on QUIT, and never fails internally", async () => {
    await fc.assert(
      fc.asyncProperty(commandScript, writeSizes, async (script, sizes) => {
        const peer = await openPeer(plainPort);
        try {
          await peer.waitForLine(/^220 /);
          await writeAll(peer, pieces(script, sizes));
          // End whatever is pending (a line, a DATA section) and ask to leave.
          await peer.write("\r\n.\r\nQUIT\r\n");
          const closed = await peer.waitForClose(10_000);
          const { lines, text } = peer.transcript();
          expect(closed, `still open; received ${JSON.stringify(text.slice(-300))}`).toBe(true);
          for (const line of lines) expect(line).toMatch(replyLine);
          expect(text).not.toMatch(internalError);
        } finally {
          peer.destroy();
        }
      }),
      { numRuns: runs(120) },
    );
    expectStoredWellFormed();
    expectNoServerErrors();
    await expectHealthy();
  });

  it("refuses a command line that never ends instead of buffering it", async () => {
    const before = await settledRss();
    const peer = await openPeer(plainPort);
    try {
      await peer.waitForLine(/^220 /);
      const megabyte = Buffer.alloc(1024 * 1024, 0x41);
      for (let sent = 0; sent < 16 && !peer.transcript().closed; sent++) await peer.write(megabyte);
      expect(await peer.waitForClose(10_000)).toBe(true);
      expect(peer.transcript().lines.at(-1)).toMatch(/^421 /);
    } finally {
      peer.destroy();
    }
    expect(megabytes((await settledRss()) - before)).toBeLessThan(16);
  });
});

describe("fuzzing the DATA stream", () => {
  it("stores a message exactly when it is well-formed, and then byte for byte", async () => {
    const outcomes = { stored: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(messageBody, writeSizes, async (body, sizes) => {
        const storedBefore = queue.messages.length;
        const peer = await openPeer(plainPort);
        try {
          await peer.waitForLine(/^220 /);
          await peer.write("EHLO client.test\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<user@mx.test>\r\nDATA\r\n");
          await peer.waitForLine(/^354 /);
          await writeAll(peer, pieces(Buffer.from(`${dotStuff(body)}\r\n.\r\n`, "latin1"), sizes));
          const reply = await peer.waitForLine(/^\d{3} /);
          const expected = Buffer.from(`${body}\r\n`, "latin1");
          const problem = malformation(expected);
          if (problem === undefined) {
            expect(reply, "a well-formed message was refused").toMatch(/^250 /);
            expect(queue.messages.length).toBe(storedBefore + 1);
            const stored = queue.messages.at(-1)!.bytes;
            expect(malformation(stored)).toBeUndefined();
            expect(stored.subarray(stored.length - expected.length).equals(expected)).toBe(true);
            outcomes.stored++;
          } else {
            expect(reply, `accepted a message with ${problem}`).toMatch(/^5\d\d /);
            expect(queue.messages.length).toBe(storedBefore);
            outcomes.refused++;
          }
          // The session goes on after the reply.
          await peer.write("QUIT\r\n");
          await peer.waitForLine(/^221 /);
        } finally {
          peer.destroy();
        }
      }),
      { numRuns: runs(150) },
    );
    // Both sides of the oracle were exercised, not just one.
    expect(outcomes.stored).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
    expectStoredWellFormed();
    expectNoServerErrors();
  });
});

/** The bytes a TLS client sends first (its ClientHello), captured from a real handshake attempt. */
async function captureClientHello(): Promise<Buffer> {
  const listener = createTcpServer();
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address() as { port: number };
  const hello = new Promise<Buffer>((resolve) =>
    listener.once("connection", (socket: Socket) => {
      socket.once("data", (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
      });
    }),
  );
  const client = tlsConnect({ port, host: "127.0.0.1", servername: "mx.test", rejectUnauthorized: false });
  client.on("error", () => undefined);
  const bytes = await hello;
  client.destroy();
  await new Promise((resolve) => listener.close(resolve));
  return bytes;
}

describe("fuzzing TLS handshakes", () => {
  it("drops cut-off, corrupted and stalled handshakes (implicit TLS and STARTTLS) and keeps serving", async () => {
    const hello = await captureClientHello();
    const handshake = fc.record({
      via: fc.constantFrom("implicit", "starttls"),
      cut: fc.nat({ max: hello.length }),
      corrupt: fc.option(fc.tuple(fc.nat({ max: hello.length - 1 }), fc.integer({ min: 0, max: 255 }))),
      garbage: fc.uint8Array({ maxLength: 64 }),
      end: fc.constantFrom("reset", "half-close", "stall"),
    });
    await fc.assert(
      fc.asyncProperty(handshake, async ({ via, cut, corrupt, garbage, end }) => {
        let peer: Peer;
        if (via === "implicit") {
          peer = await openPeer(implicitPort);
        } else {
          peer = await openPeer(startTlsPort);
          await peer.waitForLine(/^220 /);
          await peer.write("EHLO client.test\r\n");
          await peer.waitForLine(/^250 /);
          await peer.write("STARTTLS\r\n");
          await peer.waitForLine(/^220 /);
        }
        try {
          const bytes = Buffer.from(hello.subarray(0, cut));
          if (corrupt && corrupt[0] < bytes.length) bytes[corrupt[0]] = corrupt[1];
          await peer.write(Buffer.concat([bytes, Buffer.from(garbage)]));
          if (end === "reset") return;
          if (end === "half-close") peer.socket.end();
          // Stalled or half-closed mid-handshake: the server must let go (idle timeout 1.5 s).
          expect(await peer.waitForClose(8000)).toBe(true);
        } finally {
          peer.destroy();
        }
      }),
      { numRuns: runs(30) },
    );
    expectNoServerErrors();
    await expectHealthy();
  });

  it("answers a plaintext command sent to the implicit TLS port by closing", async () => {
    const peer = peerOn(netConnect({ port: implicitPort, host: "127.0.0.1" }));
    try {
      await peer.write("EHLO client.test\r\n");
      expect(await peer.waitForClose(8000)).toBe(true);
    } finally {
      peer.destroy();
    }
  });
});

describe("memory over the whole fuzzing run", () => {
  it("stays bounded", async () => {
    // Everything above ran against this one server; what it still holds is what it leaked.
    expect(megabytes((await settledRss()) - rssAtStart)).toBeLessThan(64);
    expectStoredWellFormed();
  });
});
