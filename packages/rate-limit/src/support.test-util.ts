// Shared by this package's tests: a client of the shared Redis and short SMTP dialogues. (Key
// prefixes and a redis-server a test may stop are @postern/testing's.)
import { accept, type Plugin } from "@postern/core";
import { buildMessage, connectSmtp, type RawSmtpClient, type SmtpReplyLines, sharedRedisUrl } from "@postern/testing";
import { Redis } from "ioredis";

/** A plain client of the shared Redis, for looking at what the plugin wrote. */
export function redisClient(url = sharedRedisUrl): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1 });
}

/** Retries `attempt` until it returns true (or throws the last failure after `timeoutMs`). */
export interface Opened {
  client: RawSmtpClient;
  greeting: SmtpReplyLines;
}

/** Connects and reads the greeting; `proxy` is a PROXY protocol v1 line sent first. */
export async function openSession(port: number, options: { host?: string; proxy?: string } = {}): Promise<Opened> {
  const client = await connectSmtp(port, options.host ?? "127.0.0.1");
  if (options.proxy) client.write(`${options.proxy}\r\n`);
  const greeting = await client.read();
  return { client, greeting };
}

/** Connects, expects the 220 greeting and says EHLO. */
export async function ready(
  port: number,
  options: { host?: string; proxy?: string; helo?: string } = {},
): Promise<RawSmtpClient> {
  const { client, greeting } = await openSession(port, options);
  if (greeting.code !== 220) throw new Error(`expected a 220 greeting, got ${greeting.code} ${greeting.text}`);
  const ehlo = await client.command(`EHLO ${options.helo ?? "client.test"}`);
  if (ehlo.code !== 250) throw new Error(`EHLO refused: ${ehlo.code} ${ehlo.text}`);
  return client;
}

export interface TransactionReplies {
  mail: SmtpReplyLines;
  rcpt: SmtpReplyLines[];
  data: SmtpReplyLines | undefined;
}

/** MAIL, RCPT for each recipient, and DATA with `body` when a recipient was accepted; RSET after a refusal. */
export async function transaction(
  client: RawSmtpClient,
  options: { from?: string; to: string[]; text?: string },
): Promise<TransactionReplies> {
  const from = options.from ?? "sender@example.org";
  const mail = await client.command(`MAIL FROM:<${from}>`);
  const rcpt: SmtpReplyLines[] = [];
  if (mail.code !== 250) return { mail, rcpt, data: undefined };
  for (const to of options.to) rcpt.push(await client.command(`RCPT TO:<${to}>`));
  if (!rcpt.some((reply) => reply.code === 250)) {
    await client.command("RSET");
    return { mail, rcpt, data: undefined };
  }
  const go = await client.command("DATA");
  if (go.code !== 354) return { mail, rcpt, data: go };
  const message = buildMessage({ from, to: options.to, text: options.text ?? "Hello.\n" });
  client.write(Buffer.concat([message, Buffer.from(".\r\n")]));
  return { mail, rcpt, data: await client.read() };
}

/** An AUTH plugin for tests: any user name, password "secret". */
export function testAuth(): Plugin {
  return {
    name: "test:auth",
    hooks: {
      auth(_session, credentials) {
        return credentials.password === "secret" ? accept() : undefined;
      },
    },
  } satisfies Plugin;
}

/** AUTH PLAIN as one command. */
export function authPlain(client: RawSmtpClient, user: string, password: string): Promise<SmtpReplyLines> {
  return client.command(`AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString("base64")}`);
}
