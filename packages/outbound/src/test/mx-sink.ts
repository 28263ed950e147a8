// A receiving SMTP server for delivery tests: a real smtp-server instance on a loopback address
// (127.0.x.y all reach this machine on Linux), answering RCPT and DATA as the test says and
// recording what arrived and how (TLS, REQUIRETLS, AUTH).
import { readFile } from "node:fs/promises";
import type { AddressInfo, Socket } from "node:net";
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from "smtp-server";

export interface SinkMessage {
  from: string;
  to: string[];
  bytes: Buffer;
  /** Address the sink listens on (which MX got it). */
  host: string;
  secure: boolean;
  requireTls: boolean;
  user: string | undefined;
  /** NOTIFY and RET/ENVID as the sink received them. */
  dsn: unknown;
  /** MAIL FROM carried SMTPUTF8. */
  smtpUtf8: boolean;
  /** The address the client connected from. */
  remoteAddress: string;
  /** The name the client gave with EHLO/HELO. */
  ehlo: string;
}

export interface SinkReply {
  code: number;
  /** Text, starting with the enhanced status code, e.g. "5.1.1 No such user". */
  message: string;
}

export interface SinkOptions {
  host: string;
  /** 0 for any; several sinks share one port on different addresses (MX port is one option). */
  port?: number;
  /** Offer STARTTLS with this certificate. */
  tls?: { certificate: string; key: string } | undefined;
  /** Advertise REQUIRETLS (after STARTTLS). */
  requireTlsExtension?: boolean;
  /** Advertise DSN (default true). */
  dsn?: boolean;
  /** Advertise SMTPUTF8 (default true). */
  smtpUtf8?: boolean;
  /** Require AUTH with these credentials. */
  auth?: { user: string; pass: string };
  rcpt?: (address: string, seen: number) => SinkReply | undefined;
  data?: (message: SinkMessage) => SinkReply | undefined | Promise<SinkReply | undefined>;
  /** Never answer the end of DATA (a peer that hangs). */
  stallData?: boolean;
}

export interface MxSink {
  readonly host: string;
  readonly port: number;
  readonly messages: SinkMessage[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Connections open right now (accepted, socket not yet closed). */
  readonly open: number;
  /** The most connections that were open at once. */
  readonly maxOpen: number;
  /** Resolves with the next message (or one already received and not yet taken by next()). */
  next(timeoutMs?: number): Promise<SinkMessage>;
  close(): Promise<void>;
}

function replyError(reply: SinkReply): Error {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

export async function startSink(options: SinkOptions): Promise<MxSink> {
  const messages: SinkMessage[] = [];
  const waiting: ((message: SinkMessage) => void)[] = [];
  let taken = 0;
  let connections = 0;
  let open = 0;
  let maxOpen = 0;
  const rcptSeen = new Map<string, number>();
  const tls = options.tls
    ? { cert: await readFile(options.tls.certificate), key: await readFile(options.tls.key) }
    : undefined;

  const server = new SMTPServer({
    name: `sink-${options.host}`,
    logger: false,
    secure: false,
    ...(tls ?? {}),
    disabledCommands: [...(tls ? [] : ["STARTTLS"]), ...(options.auth ? [] : ["AUTH"])],
    hideSTARTTLS: !tls,
    hideREQUIRETLS: !options.requireTlsExtension,
    hideDSN: options.dsn === false,
    hideSMTPUTF8: options.smtpUtf8 === false,
    authOptional: !options.auth,
    allowInsecureAuth: false,
    size: 50 * 1024 * 1024,
    onConnect(_session, callback) {
      connections++;
      callback();
    },
    onAuth(auth, _session, callback) {
      if (options.auth && auth.username === options.auth.user && auth.password === options.auth.pass) {
        return callback(null, { user: auth.username });
      }
      callback(replyError({ code: 535, message: "5.7.8 Authentication failed" }));
    },
    onRcptTo(address, _session, callback) {
      const seen = (rcptSeen.get(address.address) ?? 0) + 1;
      rcptSeen.set(address.address, seen);
      const reply = options.rcpt?.(address.address, seen);
      callback(reply ? replyError(reply) : undefined);
    },
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", async () => {
        const envelope = session.envelope as typeof session.envelope & { requireTLS?: boolean; dsn?: unknown };
        const message: SinkMessage = {
          from: envelope.mailFrom ? envelope.mailFrom.address : "",
          to: envelope.rcptTo.map((rcpt) => rcpt.address),
          bytes: Buffer.concat(chunks),
          host: options.host,
          secure: Boolean(session.secure),
          requireTls: Boolean(envelope.requireTLS),
          user: typeof session.user === "string" ? session.user : undefined,
          dsn: { ...(envelope.dsn as object), rcpt: envelope.rcptTo.map((rcpt) => (rcpt as { dsn?: unknown }).dsn) },
          smtpUtf8: Boolean((envelope as { smtpUtf8?: boolean }).smtpUtf8),
          remoteAddress: session.remoteAddress,
          ehlo: session.hostNameAppearsAs,
        };
        if (options.stallData) {
          messages.push(message);
          return; // never call back: the client waits for a reply that does not come
        }
        const reply = await options.data?.(message);
        if (reply && reply.code >= 400) return callback(replyError(reply));
        messages.push(message);
        const waiter = waiting.shift();
        if (waiter) {
          taken++;
          waiter(message);
        }
        callback(null, reply?.message ?? "2.0.0 Ok: stored by sink");
      });
    },
  });
  server.on("error", () => undefined);
  // Open connections counted on the TCP socket: from accept until the client has closed its side
  // (its FIN arrives; smtp-server's own close callback comes ticks later).
  server.server.on("connection", (socket: Socket) => {
    open++;
    maxOpen = Math.max(maxOpen, open);
    let counted = true;
    const gone = () => {
      if (!counted) return;
      counted = false;
      open--;
    };
    socket.once("end", gone);
    socket.once("close", gone);
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(options.port ?? 0, options.host, () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;

  return {
    host: options.host,
    port,
    messages,
    get connections() {
      return connections;
    },
    get open() {
      return open;
    },
    get maxOpen() {
      return maxOpen;
    },
    next(timeoutMs = 15_000) {
      if (taken < messages.length) return Promise.resolve(messages[taken++]!);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`sink ${options.host}: no message within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiting.push((message) => {
          clearTimeout(timer);
          resolve(message);
        });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        // Sessions the test left open (stalled DATA, idle pooled connections) must not hold us.
        for (const connection of (server as unknown as { connections: Set<{ close(): void }> }).connections ?? []) {
          connection.close();
        }
        server.close(() => resolve());
      });
    },
  };
}
