// Test support (not exported): a TCP proxy in front of the LMTP server that can cut the connection
// part-way through the message, the way a crash or a network failure would.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface CuttingProxy {
  readonly port: number;
  /** When set, connections are cut after this many bytes from the client (mid-DATA for big messages). */
  cutAfterBytes: number | undefined;
  close(): Promise<void>;
}

export async function startCuttingProxy(targetPort: number): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  const proxy = { cutAfterBytes: undefined as number | undefined };
  const server: Server = createServer((client) => {
    const upstream = connect({ port: targetPort, host: "127.0.0.1" });
    sockets.add(client);
    sockets.add(upstream);
    const limit = proxy.cutAfterBytes;
    let forwarded = 0;
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => {
      forwarded += chunk.length;
      if (limit !== undefined && forwarded > limit) {
        // Forward up to the limit, then both sides lose the connection.
        upstream.write(chunk.subarray(0, Math.max(0, chunk.length - (forwarded - limit))), cut);
        return;
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on("drain", () => client.resume());
    upstream.on("data", (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    client.on("drain", () => upstream.resume());
    for (const socket of [client, upstream]) {
      socket.on("error", cut);
      socket.on("close", () => {
        sockets.delete(socket);
        cut();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    get cutAfterBytes() {
      return proxy.cutAfterBytes;
    },
    set cutAfterBytes(value) {
      proxy.cutAfterBytes = value;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
