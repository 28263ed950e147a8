// Shared by this package's tests: Redis key prefixes per test file, a private redis-server that a
// test may stop (the shared one is never touched beyond its own keys), and short SMTP dialogues.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { type AddressInfo, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { accept, type Plugin } from "@postern/core";
import { buildMessage, connectSmtp, type RawSmtpClient, type SmtpReplyLines } from "@postern/testing";
import { Redis } from "ioredis";

export const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A key prefix no other test file (or run) uses. */
export function uniquePrefix(file: string): string {
  return `postern-test:rate-limit:${file}:${randomUUID().slice(0, 8)}`;
}

/** Deletes every key under `prefix` from the Redis at `url`. */
export async function deleteKeys(prefix: string, url = redisUrl): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** A plain client of the shared Redis, for looking at what the plugin wrote. */
export function redisClient(url = redisUrl): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1 });
}

async function sparePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A redis-server of the test's own, on a spare loopback port, that the test may stop, freeze or restart. */
export interface OwnRedis {
  readonly url: string;
  readonly port: number;
  /** SIGKILL: Redis is gone (connections refused). */
  kill(): Promise<void>;
  /** SIGSTOP: Redis accepts nothing and answers nothing (a hung server). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** Starts it again on the same port (empty). */
  restart(): Promise<void>;
}

export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await sparePort();
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const launch = async () => {
    child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
      { stdio: "ignore" },
    );
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => undefined);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await probe.connect();
          await probe.ping();
          return;
        } catch (error) {
          if (attempt > 100) throw error;
          probe.disconnect();
          await sleep(50);
        }
      }
    } finally {
      probe.disconnect();
    }
  };

  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGKILL");
    await exited;
  };

  await launch();
  return {
    url,
    port,
    kill,
    freeze: () => child?.kill("SIGSTOP"),
    thaw: () => child?.kill("SIGCONT"),
    async restart() {
      await kill();
      await launch();
    },
  };
}

/** Retries `attempt` until it returns true (or throws the last failure after `timeoutMs`). */
export async function eventually(attempt: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await attempt()) return;
    if (Date.now() > deadline) throw new Error(`condition still false after ${timeoutMs} ms`);
    await sleep(100);
  }
}

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
