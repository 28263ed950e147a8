// IPv6 clients are counted per prefix (/64 by default). The server listens on ::1; addresses other
// than ::1 come through a PROXY protocol listener (as behind a load balancer), the only way to have
// several IPv6 clients on loopback.
import { startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import rateLimit, { type RateLimitOptions } from "./index.ts";
import { ready, transaction } from "./support.test-util.ts";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(options: Partial<RateLimitOptions> = {}) {
  server = await startTestServer({
    plugins: [
      rateLimit({ limits: [{ kind: "messages", limit: "1/1h" }], ...options }),
      { name: "test:claim", hooks: { rcptTo: () => ({ kind: "accept", route: "local" }) } },
      { name: "test:store", hooks: { queue: () => ({ kind: "accept" }) } },
    ],
    config: {
      listeners: [
        { address: "::1", port: 1 },
        { address: "::1", port: 1, proxy: ["::1"] },
      ],
    },
  });
  return server;
}

/** Sends one message as `client` (through the PROXY listener) and returns the reply code that ended it. */
async function sendAs(client: string): Promise<number> {
  const family = client.includes(":") ? "TCP6" : "TCP4";
  const session = await ready(server!.ports[1]!, { host: "::1", proxy: `PROXY ${family} ${client} ::1 40000 25` });
  const replies = await transaction(session, { to: ["a@localhost"] });
  session.close();
  return replies.data?.code ?? replies.mail.code;
}

const reachedKeys = () => server!.logs.filter((line) => line.msg === "rate limit reached").map((line) => line.key);

describe("IPv6 clients", () => {
  it("are counted per /64 by default", async () => {
    await start();
    expect(await sendAs("2001:db8:1:2::10")).toBe(250);
    expect(await sendAs("2001:db8:1:2:ffff:ffff:ffff:ffff")).toBe(451);
    expect(await sendAs("2001:db8:1:3::10")).toBe(250);
    expect(reachedKeys()).toEqual(["ip=2001:db8:1:2::/64"]);
  });

  it("are counted per the configured prefix", async () => {
    await start({ ipv6Prefix: 48 });
    expect(await sendAs("2001:db8:1:2::10")).toBe(250);
    expect(await sendAs("2001:db8:1:3::10")).toBe(451);
    expect(await sendAs("2001:db8:2::10")).toBe(250);
    await server!.stop();

    await start({ ipv6Prefix: 128 });
    expect(await sendAs("2001:db8:1:2::10")).toBe(250);
    expect(await sendAs("2001:db8:1:2::11")).toBe(250);
    expect(await sendAs("2001:db8:1:2::10")).toBe(451);
    expect(reachedKeys()).toEqual(["ip=2001:db8:1:2::10"]);
  });

  it("a direct connection over ::1 is counted under its /64", async () => {
    await start();
    const session = await ready(server!.ports[0]!, { host: "::1" });
    expect((await transaction(session, { to: ["a@localhost"] })).data?.code).toBe(250);
    expect((await transaction(session, { to: ["a@localhost"] })).mail.code).toBe(451);
    expect(reachedKeys()).toEqual(["ip=::/64"]);
    session.close();
  });

  it("IPv4 clients are counted alone, and IPv4-mapped IPv6 addresses as the IPv4 address", async () => {
    await start();
    expect(await sendAs("198.51.100.7")).toBe(250);
    expect(await sendAs("198.51.100.8")).toBe(250);
    expect(await sendAs("::ffff:198.51.100.7")).toBe(451);
    expect(reachedKeys()).toEqual(["ip=198.51.100.7"]);
  });
});
