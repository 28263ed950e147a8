// Test support (not exported): a TCP proxy in front of the LMTP server that can cut the connection
// part-way through the message, the way a crash or a network failure would.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface CuttingProxy {
  readonly port: number;
  /**
   * When set, every connection — open ones too (the plugin reuses sessions) — is cut once this
   * many more bytes came from the client (mid-DATA for big messages).
   */
  cutAfterBytes: number | undefined;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Closes every open connection now, as a server timing out its idle clients would. */
  closeConnections(): void;
  close(): Promise<void>;
}

export async function startCuttingProxy(targetPort: number): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  /** Bytes each open connection forwarded since cutAfterBytes was last set. */
  const counters = new Set<{ forwarded: number }>();
  const proxy = { cutAfterBytes: undefined as number | undefined, connections: 0 };
  const server: Server = createServer((client) => {
    const upstream = connect({ port: targetPort, host: "127.0.0.1" });
    proxy.connections++;
    sockets.add(client);
    sockets.add(upstream);
    const counter = { forwarded: 0 };
    counters.add(counter);
    const cut = () => {
      counters.delete(counter);
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => {
      counter.forwarded += chunk.length;
      const limit = proxy.cutAfterBytes;
      const forwarded = counter.forwarded;
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
      for (const counter of counters) counter.forwarded = 0;
    },
    get connections() {
      return proxy.connections;
    },
    closeConnections() {
      for (const socket of sockets) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
