// Sessions that send messages with unique Message-IDs back to back and record, for each one,
// whether the server acknowledged it with 250 — the promise a crash must not break.
import { buildMessage, bulkyText, connectSmtp, type RawSmtpClient } from "@postern/testing";

export interface LoadRecord {
  /** Message-IDs answered 250 after DATA. */
  readonly acknowledged: Set<string>;
  /** Message-IDs refused with a 4xx/5xx reply. */
  readonly refused: Set<string>;
  /** Message-IDs whose DATA was sent and whose reply has not come (yet). */
  readonly awaitingReply: Set<string>;
}

export interface Load extends LoadRecord {
  /** Resolves once every session has ended (the server went away, or stop() was called). */
  readonly finished: Promise<void>;
  stop(): void;
}

/** The last line of every test message: a message stored without it was cut short. */
export const endMarker = "END-OF-TEST-MESSAGE";

/** Every 10th message is ~400 KB, above core's memory threshold, so it goes through the spool file. */
function messageFor(messageId: string, recipient: string, sequence: number): string {
  const size = sequence % 10 === 9 ? 400_000 : 1000 + ((sequence * 7919) % 20_000);
  const raw = buildMessage({
    from: "load@example.org",
    to: recipient,
    subject: `crash test ${sequence}`,
    messageId,
    text: `${bulkyText(size)}${endMarker}\n`,
  }).toString("latin1");
  // Dot-stuffing (RFC 5321 §4.5.2); buildMessage's lines never start with a dot, but be exact.
  return raw.replace(/(^|\r\n)\./g, "$1..");
}

async function session(port: number, recipient: string, tag: string, record: LoadRecord, stopped: () => boolean) {
  let client: RawSmtpClient;
  try {
    client = await connectSmtp(port);
    await client.read();
    if ((await client.command("EHLO load.test")).code !== 250) return;
  } catch {
    return;
  }
  try {
    for (let sequence = 0; !stopped(); sequence++) {
      const messageId = `<${tag}.${sequence}.${Date.now().toString(36)}@load.test>`;
      if ((await client.command("MAIL FROM:<load@example.org>")).code !== 250) return;
      if ((await client.command(`RCPT TO:<${recipient}>`)).code !== 250) return;
      if ((await client.command("DATA")).code !== 354) return;
      record.awaitingReply.add(messageId);
      client.write(`${messageFor(messageId, recipient, sequence)}.\r\n`);
      const reply = await client.read(30_000);
      record.awaitingReply.delete(messageId);
      (reply.code === 250 ? record.acknowledged : record.refused).add(messageId);
    }
    await client.command("QUIT").catch(() => undefined);
  } catch {
    // The server went away mid-session: what was awaiting a reply stays in awaitingReply.
  } finally {
    client.close();
  }
}

export function startLoad(options: { port: number; sessions: number; recipient: string; tag: string }): Load {
  const record: LoadRecord = { acknowledged: new Set(), refused: new Set(), awaitingReply: new Set() };
  let stopped = false;
  const sessions = Array.from({ length: options.sessions }, (_, index) =>
    session(options.port, options.recipient, `${options.tag}.${index}`, record, () => stopped),
  );
  return {
    ...record,
    finished: Promise.all(sessions).then(() => undefined),
    stop() {
      stopped = true;
    },
  };
}

/**
 * Resolves once `count` messages were acknowledged and, in the same tick, at least one message's
 * DATA has been sent without a reply yet: the moment to pull the plug mid-transaction.
 */
export async function midLoad(load: LoadRecord, count: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (load.acknowledged.size < count || load.awaitingReply.size === 0) {
    if (Date.now() > deadline) {
      throw new Error(
        `${load.acknowledged.size} of ${count} messages acknowledged in ${timeoutMs} ms, ${load.awaitingReply.size} awaiting a reply (${load.refused.size} refused)`,
      );
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}
