// The fake DNS's UDP and TCP sides share one port even when the TCP twin of the first UDP port is
// taken (it was then left without TCP, and a truncated answer's TCP retry met ECONNREFUSED).
import { type AddressInfo, connect, createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { bindUdpAndTcp } from "./fake-dns.ts";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

describe("bindUdpAndTcp", () => {
  it("moves to another port when the TCP side of the first one is taken", async () => {
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, "127.0.0.1", resolve));
    closers.push(() => new Promise((resolve) => squatter.close(() => resolve())));
    const taken = (squatter.address() as AddressInfo).port;

    let tcpAnswered = false;
    const { udp, tcp, port } = await bindUdpAndTcp(
      () => undefined,
      (socket) => {
        tcpAnswered = true;
        socket.end();
      },
      taken,
    );
    closers.push(async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    });

    expect(port).not.toBe(taken);
    expect((udp.address() as AddressInfo).port).toBe(port);
    expect((tcp.address() as AddressInfo).port).toBe(port);
    await new Promise<void>((resolve, reject) => {
      const client = connect(port, "127.0.0.1");
      client.on("error", reject);
      client.on("close", () => resolve());
    });
    expect(tcpAnswered).toBe(true);
  });
});
