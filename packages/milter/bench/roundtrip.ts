// Milter round-trip time per message against a real OpenDKIM (signing, 2048-bit RSA):
// 1. at the protocol level — one milter connection, per message MAIL, RCPT, DATA, the header
//    fields, the body, end of message and OpenDKIM's DKIM-Signature back;
// 2. end to end — messages sent over one SMTP connection to Postern with and without the milter
//    plugin; the difference is what the milter adds to each message.
//   node --conditions=dev-source packages/milter/bench/roundtrip.ts [messages] [bodyKB]
import { buildMessage, claimRecipients, connectSmtp, startTestServer } from "@postern/testing";
import milter from "../src/index.ts";
import { MilterSession } from "../src/milter-session.ts";
import { parseMilterAddress } from "../src/options.ts";
import { startOpenDkim } from "../src/testing/opendkim.ts";

const count = Number(process.argv[2] ?? 200);
const bodyKb = Number(process.argv[3] ?? 10);
const text = `${"The quick brown fox jumps over the lazy dog. 0123456789 ".repeat(2).slice(0, 76)}\n`.repeat(
  Math.ceil((bodyKb * 1024) / 77),
);
const message = buildMessage({ from: "alice@example.org", to: "bob@example.net", subject: "round trip", text });

const summary = (label: string, samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const mean = samples.reduce((sum, value) => sum + value, 0) / samples.length;
  console.log(
    `${label.padEnd(34)} mean ${mean.toFixed(2)} ms   p50 ${at(0.5).toFixed(2)} ms   p95 ${at(0.95).toFixed(2)} ms   (${samples.length} messages)`,
  );
  return mean;
};

/** Both measurements for one OpenDKIM (listening on TCP or on a Unix socket). */
async function measure(transport: "TCP" | "Unix socket"): Promise<void> {
  const dkim = await startOpenDkim({ unixSocket: transport === "Unix socket" });
  try {
    // 1. Protocol level.
    const session = new MilterSession(
      {
        name: "opendkim",
        address: parseMilterAddress(dkim.address)!,
        timeouts: { connectMs: 5000, commandMs: 5000, contentMs: 30_000 },
        actions: 0x1bf,
      },
      "/tmp",
    );
    await session.open({ hostname: "client.test", family: "inet", port: 40_000, address: "127.0.0.1" }, new Map());
    await session.helo("client.test", new Map());
    const protocol: number[] = [];
    for (let index = 0; index < count + 10; index++) {
      const started = process.hrtime.bigint();
      await session.mail("alice@example.org", [], new Map([["i", `Q${index}`]]));
      await session.rcpt("bob@example.net", [], new Map());
      const outcome = await session.message([message], {
        data: new Map(),
        endOfHeaders: new Map(),
        endOfMessage: new Map(),
      });
      if (outcome.actions.length !== 1) throw new Error(`expected one signature, got ${JSON.stringify(outcome)}`);
      if (index >= 10) protocol.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    session.quit();

    // 2. End to end over SMTP, one connection, with and without the milter.
    const endToEnd = async (plugins: Parameters<typeof startTestServer>[0]["plugins"]) => {
      const server = await startTestServer({ plugins, config: { limits: { maxMessageSize: "10MB" } } });
      const samples: number[] = [];
      try {
        const client = await connectSmtp(server.port);
        await client.read();
        await client.command("EHLO client.test");
        const data = `${message.toString()}.`;
        for (let index = 0; index < count + 10; index++) {
          const started = process.hrtime.bigint();
          await client.command("MAIL FROM:<alice@example.org>");
          await client.command("RCPT TO:<bob@example.net>");
          await client.command("DATA");
          const reply = await client.command(data);
          if (reply.code !== 250) throw new Error(`message refused: ${reply.lines.join(" ")}`);
          if (index >= 10) samples.push(Number(process.hrtime.bigint() - started) / 1e6);
        }
        await client.command("QUIT");
      } finally {
        await server.stop();
      }
      return samples;
    };
    const store = { name: "bench:accept", hooks: { queue: () => ({ kind: "accept" as const }) } };
    const without = await endToEnd([claimRecipients(), store]);
    const withMilter = await endToEnd([claimRecipients(), milter({ milters: [{ address: dkim.address }] }), store]);

    console.log(
      `\n${transport}: message ${(message.length / 1024).toFixed(1)} KB, OpenDKIM ${dkim.address} (relaxed/relaxed, RSA 2048)`,
    );
    summary("milter protocol, per message", protocol);
    const base = summary("SMTP without the milter", without);
    const milterMean = summary("SMTP with the milter (OpenDKIM)", withMilter);
    console.log(`${"milter added per message".padEnd(34)} ${(milterMean - base).toFixed(2)} ms`);
  } finally {
    await dkim.stop();
  }
}

await measure("TCP");
await measure("Unix socket");
