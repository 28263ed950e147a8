// Test support (not exported): a TCP proxy in front of a real server (PostgreSQL here) that can be
// taken down — listener closed, open connections cut — and brought back on the same port: the way
// a database host that crashes and restarts looks to a client.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface DownableProxy {
  readonly port: number;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startDownableProxy(target: { host: string; port: number }): Promise<DownableProxy> {
  const sockets = new Set<Socket>();
  const serve = (client: Socket) => {
    const upstream = connect(target);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  };
  let server: Server | undefined = createServer(serve);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const down = async () => {
    const closing = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
  };
  return {
    port,
    down,
    async up() {
      if (server) return;
      const reopened = createServer(serve);
      await new Promise<void>((resolve, reject) => {
        reopened.once("error", reject);
        reopened.listen(port, "127.0.0.1", resolve);
      });
      server = reopened;
    },
    close: down,
  };
}
