// Load for fault tests: sessions that keep sending while a dependency fails, reconnect when the
// server hangs up, and record for every message what the client was told. The promise under
// test: 250 only for a message that is stored exactly as sent; otherwise a 4xx (never a 5xx for a
// fault of ours, never silence).
import { createHash, randomBytes } from "node:crypto";
import { connectSmtp, type RawSmtpClient, type SmtpReplyLines } from "@postern/testing";

export interface SentMessage {
  readonly messageId: string;
  readonly recipient: string;
  /** The message as the server must store it (after undoing dot-stuffing), its length and hash. */
  readonly length: number;
  readonly sha256: string;
}

export interface ReplyRecord {
  readonly stage: string;
  readonly code: number;
  readonly text: string;
  readonly at: number;
}

export interface FaultLoad {
  /** Answered 250 after DATA. */
  readonly acknowledged: Map<string, SentMessage>;
  /** Sent whole but answered 4xx (or the connection dropped before the reply): stored at most once, never half. */
  readonly notAcknowledged: Map<string, SentMessage>;
  readonly temporary: ReplyRecord[];
  readonly permanent: ReplyRecord[];
  /** A command or the end of DATA that got no reply within replyTimeoutMs. */
  readonly hangs: ReplyRecord[];
  /** Connections refused or dropped by the server. */
  readonly dropped: { count: number };
  /** Times of every 250 after DATA, to see when mail flowed again. */
  readonly ackTimes: number[];
  stop(): Promise<void>;
}

export interface FaultLoadOptions {
  port: number;
  sessions: number;
  /** Recipients, taken in turn (one per message). */
  recipients: readonly string[];
  tag: string;
  /** Size of message number `sequence` of a session (default 1–9 KB). */
  size?: (sequence: number) => number;
  sender?: string;
  replyTimeoutMs?: number;
  /** Pause between messages of one session (default 20 ms), to keep the load light. */
  pauseMs?: number;
  /** Runs after the greeting, instead of a plain EHLO (e.g. STARTTLS and AUTH); returns the client to use. */
  open?: (client: RawSmtpClient) => Promise<RawSmtpClient>;
  /** QUIT and connect again after this many messages (default: keep the connection). */
  messagesPerConnection?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A message with a unique Message-ID and varied lines (every line differs, so a cut or a swap shows). */
export function makeMessage(
  messageId: string,
  from: string,
  recipient: string,
  size: number,
): { wire: string; stored: Buffer } {
  const lines: string[] = [];
  let length = 0;
  for (let line = 0; length < size; line++) {
    const text = `${String(line).padStart(6, "0")} ${randomBytes(32).toString("base64")}`;
    lines.push(text);
    length += text.length + 2;
  }
  // A line that starts with a dot, so dot-stuffing is part of what must come back exact.
  lines.splice(Math.min(3, lines.length), 0, ".a line starting with a dot");
  lines.push("END-OF-TEST-MESSAGE");
  const raw = [
    `From: <${from}>`,
    `To: <${recipient}>`,
    `Subject: fault test ${messageId}`,
    `Message-ID: ${messageId}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
    "",
    ...lines,
    "",
  ].join("\r\n");
  return { wire: raw.replace(/(^|\r\n)\./g, "$1.."), stored: Buffer.from(raw, "latin1") };
}

export function startFaultLoad(options: FaultLoadOptions): FaultLoad {
  const replyTimeoutMs = options.replyTimeoutMs ?? 45_000;
  const sender = options.sender ?? "load@example.org";
  const record = {
    acknowledged: new Map<string, SentMessage>(),
    notAcknowledged: new Map<string, SentMessage>(),
    temporary: [] as ReplyRecord[],
    permanent: [] as ReplyRecord[],
    hangs: [] as ReplyRecord[],
    dropped: { count: 0 },
    ackTimes: [] as number[],
  };
  let stopped = false;
  let counter = 0;

  const note = (stage: string, reply: SmtpReplyLines) => {
    const entry = { stage, code: reply.code, text: reply.text, at: Date.now() };
    if (reply.code >= 500) record.permanent.push(entry);
    else if (reply.code >= 400) record.temporary.push(entry);
  };

  const read = async (client: RawSmtpClient, stage: string): Promise<SmtpReplyLines> => {
    try {
      return await client.read(replyTimeoutMs);
    } catch (error) {
      if (String((error as Error).message).startsWith("no reply within")) {
        record.hangs.push({ stage, code: 0, text: "no reply", at: Date.now() });
      }
      throw error;
    }
  };

  async function session(index: number): Promise<void> {
    for (let sequence = 0; !stopped; ) {
      let client: RawSmtpClient | undefined;
      try {
        client = await connectSmtp(options.port);
      } catch {
        record.dropped.count++;
        await sleep(100);
        continue;
      }
      try {
        const greeting = await read(client, "greeting");
        if (greeting.code !== 220) {
          note("greeting", greeting);
          await sleep(100);
          continue;
        }
        if (options.open) client = await options.open(client);
        else {
          client.write("EHLO load.test\r\n");
          const ehlo = await read(client, "EHLO");
          if (ehlo.code !== 250) {
            note("EHLO", ehlo);
            await sleep(100);
            continue;
          }
        }
        for (let onThisConnection = 0; !stopped; onThisConnection++) {
          if (onThisConnection === options.messagesPerConnection) {
            client.write("QUIT\r\n");
            await read(client, "QUIT");
            break;
          }
          const recipient = options.recipients[counter++ % options.recipients.length]!;
          const messageId = `<${options.tag}.${index}.${sequence}.${randomBytes(4).toString("hex")}@load.test>`;
          const size = options.size?.(sequence) ?? 1000 + ((sequence * 7919 + index * 104_729) % 8000);
          sequence++;
          let refusedAt: SmtpReplyLines | undefined;
          for (const [stage, line, expected] of [
            ["MAIL", `MAIL FROM:<${sender}>`, 250],
            ["RCPT", `RCPT TO:<${recipient}>`, 250],
            ["DATA", "DATA", 354],
          ] as const) {
            client.write(`${line}\r\n`);
            const reply = await read(client, stage);
            if (reply.code !== expected) {
              note(stage, reply);
              refusedAt = reply;
              break;
            }
          }
          if (refusedAt) {
            if (refusedAt.code === 421) break;
            client.write("RSET\r\n");
            await read(client, "RSET");
            await sleep(options.pauseMs ?? 20);
            continue;
          }
          const message = makeMessage(messageId, sender, recipient, size);
          const sent: SentMessage = {
            messageId,
            recipient,
            length: message.stored.length,
            sha256: createHash("sha256").update(message.stored).digest("hex"),
          };
          record.notAcknowledged.set(messageId, sent);
          client.write(`${message.wire}.\r\n`);
          const reply = await read(client, "end of DATA");
          if (reply.code === 250) {
            record.notAcknowledged.delete(messageId);
            record.acknowledged.set(messageId, sent);
            record.ackTimes.push(Date.now());
          } else {
            note("end of DATA", reply);
            if (reply.code === 421) break;
          }
          await sleep(options.pauseMs ?? 20);
        }
        if (stopped) {
          client.write("QUIT\r\n");
          await read(client, "QUIT").catch(() => undefined);
        }
      } catch {
        // Hung up on, or no reply in time (recorded in hangs): start a new connection.
        record.dropped.count++;
      } finally {
        client.close();
      }
      if (!stopped) await sleep(100);
    }
  }

  const sessions = Array.from({ length: options.sessions }, (_, index) => session(index));
  return {
    ...record,
    async stop() {
      stopped = true;
      await Promise.all(sessions);
    },
  };
}

/**
 * Resolves once `count` more messages were acknowledged after now; rejects after `timeoutMs`, or
 * at once when `exited()` says the server is gone (nothing will be acknowledged any more).
 */
export async function acknowledgedMore(
  load: FaultLoad,
  count: number,
  timeoutMs: number,
  exited?: () => string | undefined,
): Promise<void> {
  const start = load.ackTimes.length;
  const deadline = Date.now() + timeoutMs;
  while (load.ackTimes.length < start + count) {
    const gone = exited?.();
    if (gone !== undefined) throw new Error(`the server exited while waiting for mail to flow:\n${gone}`);
    if (Date.now() > deadline) {
      const recent = [...load.temporary, ...load.permanent].slice(-3).map((entry) => `${entry.code} ${entry.text}`);
      throw new Error(
        `only ${load.ackTimes.length - start} of ${count} messages acknowledged within ${timeoutMs} ms; last refusals: ${recent.join(" | ")}`,
      );
    }
    await sleep(50);
  }
}

/** Resolves once `count` more 4xx replies arrived after now (the fault is felt); rejects after `timeoutMs`. */
export async function refusedMore(load: FaultLoad, count: number, timeoutMs: number): Promise<void> {
  const start = load.temporary.length + load.dropped.count;
  const deadline = Date.now() + timeoutMs;
  while (load.temporary.length + load.dropped.count < start + count) {
    if (Date.now() > deadline) throw new Error(`the fault was not felt: no 4xx within ${timeoutMs} ms`);
    await sleep(50);
  }
}
