// A raw SMTP client for tests where exact bytes matter: write anything, read replies as they come.
import { connect as netConnect, type Socket } from "node:net";
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from "node:tls";

export interface SmtpReplyLines {
  code: number;
  /** Text of each line without the code and separator. */
  lines: string[];
  /** All lines joined by "\n". */
  text: string;
  /** The enhanced status code of the first line, if any ("5.7.1"). */
  enhanced: string | undefined;
}

export interface RawSmtpClient {
  readonly socket: Socket | TLSSocket;
  /** Writes bytes as they are. */
  write(data: string | Buffer): void;
  /** The next complete reply; rejects if the connection closes first or after `timeoutMs`. */
  read(timeoutMs?: number): Promise<SmtpReplyLines>;
  /** Writes `line` + CRLF and reads the reply. */
  command(line: string): Promise<SmtpReplyLines>;
  /** STARTTLS and the TLS handshake; returns the reply to STARTTLS. */
  startTls(options?: ConnectionOptions): Promise<SmtpReplyLines>;
  /** Resolves when the server closes the connection. */
  closed(timeoutMs?: number): Promise<void>;
  /** Everything received so far, as text. */
  readonly transcript: string;
  close(): void;
}

export async function connectSmtp(
  port: number,
  host = "127.0.0.1",
  options: { tls?: ConnectionOptions | boolean } = {},
): Promise<RawSmtpClient> {
  let socket: Socket | TLSSocket = options.tls
    ? tlsConnect({ port, host, rejectUnauthorized: false, ...(typeof options.tls === "object" ? options.tls : {}) })
    : netConnect({ port, host });
  await new Promise<void>((resolve, reject) => {
    socket.once(options.tls ? "secureConnect" : "connect", () => resolve());
    socket.once("error", reject);
  });
  let buffer = "";
  let transcript = "";
  let ended = false;
  const replies: SmtpReplyLines[] = [];
  const waiters: { resolve: (reply: SmtpReplyLines) => void; reject: (error: Error) => void }[] = [];
  const closeWaiters: (() => void)[] = [];

  const parse = () => {
    for (;;) {
      const lines: string[] = [];
      let offset = 0;
      let complete: number | undefined;
      for (;;) {
        const end = buffer.indexOf("\r\n", offset);
        if (end === -1) break;
        const line = buffer.slice(offset, end);
        lines.push(line);
        offset = end + 2;
        if (/^\d{3}(?: |$)/.test(line)) {
          complete = offset;
          break;
        }
      }
      if (complete === undefined) return;
      buffer = buffer.slice(complete);
      const code = Number(lines[0]!.slice(0, 3));
      const texts = lines.map((line) => line.slice(4));
      const reply = {
        code,
        lines: texts,
        text: texts.join("\n"),
        enhanced: /^[245]\.\d+\.\d+/.exec(texts[0] ?? "")?.[0],
      };
      const waiter = waiters.shift();
      if (waiter) waiter.resolve(reply);
      else replies.push(reply);
    }
  };

  const attach = (target: Socket | TLSSocket) => {
    target.setEncoding("latin1");
    target.on("data", (chunk: string) => {
      buffer += chunk;
      transcript += chunk;
      parse();
    });
    target.on("error", () => undefined);
    target.on("close", () => {
      ended = true;
      for (const waiter of waiters.splice(0)) waiter.reject(new Error(`connection closed; received: ${transcript}`));
      for (const resolve of closeWaiters.splice(0)) resolve();
    });
  };
  attach(socket);

  const client: RawSmtpClient = {
    get socket() {
      return socket;
    },
    get transcript() {
      return transcript;
    },
    write(data) {
      socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
    },
    read(timeoutMs = 10_000) {
      const ready = replies.shift();
      if (ready) return Promise.resolve(ready);
      if (ended) return Promise.reject(new Error(`connection closed; received: ${transcript}`));
      return new Promise<SmtpReplyLines>((resolve, reject) => {
        const timer = setTimeout(() => {
          const index = waiters.indexOf(waiter);
          if (index !== -1) waiters.splice(index, 1);
          reject(new Error(`no reply within ${timeoutMs} ms; received: ${transcript}`));
        }, timeoutMs);
        const waiter = {
          resolve: (reply: SmtpReplyLines) => {
            clearTimeout(timer);
            resolve(reply);
          },
          reject: (error: Error) => {
            clearTimeout(timer);
            reject(error);
          },
        };
        waiters.push(waiter);
      });
    },
    async command(line) {
      client.write(`${line}\r\n`);
      return client.read();
    },
    async startTls(tlsOptions = {}) {
      const reply = await client.command("STARTTLS");
      if (reply.code !== 220) return reply;
      const plain = socket;
      plain.removeAllListeners("data");
      plain.removeAllListeners("close");
      const secure = tlsConnect({ socket: plain, rejectUnauthorized: false, ...tlsOptions });
      await new Promise<void>((resolve, reject) => {
        secure.once("secureConnect", () => resolve());
        secure.once("error", reject);
      });
      socket = secure;
      attach(secure);
      return reply;
    },
    closed(timeoutMs = 10_000) {
      if (ended) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("connection still open")), timeoutMs);
        closeWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    close() {
      socket.destroy();
    },
  };
  return client;
}
