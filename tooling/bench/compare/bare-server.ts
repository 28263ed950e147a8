// The baseline compare.ts measures Postern against: smtp-server alone, with an onData that only
// drains the stream, no reverse lookup, no logging.
//   node bare-server.ts <greetingDelayMs | stock>
// "stock" keeps smtp-server's fixed 100 ms pre-greeting wait; a number replaces it the same way
// Postern's listeners do (core/src/smtp-adapter.ts), so both run with the same delay.
// IPC protocol as postern-server.ts.
import type { Socket } from "node:net";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";

const delay = process.argv[2] ?? "0";

class DelaySettingServer extends SMTPServer {
  override connect(socket: Socket, socketOptions?: Parameters<SMTPServer["connect"]>[1]): void {
    const internals = this as unknown as { _onError(error: Error): void; _onClientConnect(data: unknown): void };
    const connection = new SMTPConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on("error", (error: Error) => internals._onError(error));
    connection.on("connect", (data: unknown) => internals._onClientConnect(data));
    const delayMs = Number(delay);
    connection.init = function initWithDelay() {
      this._setListeners(() => {
        if (delayMs > 0) setTimeout(() => this.connectionReady(), delayMs).unref();
        else this.connectionReady();
      });
    };
    connection.init();
  }
}

const options: SMTPServerOptions = {
  logger: false,
  disabledCommands: ["AUTH", "STARTTLS"],
  disableReverseLookup: true,
  size: 64 * 1024 * 1024,
  onData(stream, _session, callback) {
    stream.on("end", () => callback());
    stream.resume();
  },
};
const server = delay === "stock" ? new SMTPServer(options) : new DelaySettingServer(options);
server.listen(Number(process.env.BENCH_PORT ?? 0), "127.0.0.1", () => {
  const address = server.server.address() as { port: number };
  process.send!({ type: "ready", port: address.port });
});
process.on("message", (request: { type: string }) => {
  if (request.type === "gc") {
    globalThis.gc?.();
    process.send!({ type: "gc", rss: process.memoryUsage().rss });
  } else if (request.type === "stop") {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  }
});
