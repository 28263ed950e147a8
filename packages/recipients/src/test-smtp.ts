// Test support (not exported): one SMTP session that answers the RCPT TO of each address, and the
// recipients core made of them as the queue hooks saw them.
import type { Recipient } from "@postern/core";
import type { CapturedMessage, TestServer } from "@postern/testing";
import { expect } from "vitest";

export interface SessionOptions {
  /** MAIL FROM (default sender@origin.example; "" for the null sender). */
  from?: string;
  auth?: { user: string; pass: string };
  /** Runs before the RCPT TO of the address at this index (take a directory down mid-session). */
  before?: { index: number; run: () => Promise<void> };
}

/** Opens a session and answers the RCPT TO of each address, in order ("250 2.1.5", "550 5.1.1" …). */
export async function rcpt(server: TestServer, addresses: string[], options: SessionOptions = {}): Promise<string[]> {
  const client = await server.connect();
  try {
    await client.read(); // greeting
    await client.command("EHLO client.test");
    if (options.auth) {
      const token = Buffer.from(`\0${options.auth.user}\0${options.auth.pass}`).toString("base64");
      expect((await client.command(`AUTH PLAIN ${token}`)).code).toBe(235);
    }
    expect((await client.command(`MAIL FROM:<${options.from ?? "sender@origin.example"}>`)).code).toBe(250);
    const replies: string[] = [];
    for (const [index, address] of addresses.entries()) {
      if (options.before?.index === index) await options.before.run();
      const reply = await client.command(`RCPT TO:<${address}>`);
      replies.push(`${reply.code} ${reply.enhanced ?? ""}`.trim());
    }
    await client.command("QUIT");
    return replies;
  } finally {
    client.close();
  }
}

/** Sends one message to `to` over raw SMTP (every RCPT must be accepted) and returns the DATA reply. */
export async function send(server: TestServer, to: string[], from = "sender@origin.example"): Promise<string> {
  const client = await server.connect();
  try {
    await client.read();
    await client.command("EHLO client.test");
    expect((await client.command(`MAIL FROM:<${from}>`)).code).toBe(250);
    for (const address of to) {
      const reply = await client.command(`RCPT TO:<${address}>`);
      expect(reply.code, `RCPT TO:<${address}>: ${reply.code} ${reply.lines.join(" ")}`).toBe(250);
    }
    expect((await client.command("DATA")).code).toBe(354);
    const body = `From: <${from || "mailer-daemon@origin.example"}>\r\nTo: <${to[0]}>\r\nSubject: test\r\nMessage-ID: <${Date.now()}.${Math.random()}@origin.example>\r\n\r\nHello.\r\n.`;
    const reply = await client.command(body);
    await client.command("QUIT");
    return `${reply.code} ${reply.enhanced ?? ""}`.trim();
  } finally {
    client.close();
  }
}

/** The recipients of every captured group, as "route address" plus what a store or outbound reads. */
export function recipientsOf(
  messages: readonly CapturedMessage[],
): Pick<Recipient, "address" | "route" | "original" | "detail" | "sender">[] {
  return messages.flatMap((message) =>
    message.group.recipients.map(({ address, route, original, detail, sender }) => ({
      address,
      route,
      original,
      detail,
      sender,
    })),
  );
}
