// @postern/greylist over real SMTP: clients on other addresses come through a PROXY protocol
// listener, the clock is the test's (no test waits five minutes), and reverse DNS is a fake zone.
import { accept, type Plugin, type ServerContext } from "@postern/core";
import {
  buildMessage,
  claimRecipients,
  connectSmtp,
  type MemoryQueue,
  memoryQueue,
  type SmtpReplyLines,
  startTestServer,
  type TestServer,
  type Zone,
} from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import greylist, { type GreylistCheck, type GreylistOptions, greylistResult } from "./index.ts";

const minute = 60_000;
const servers: TestServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop();
});

/** A clock the test moves. */
function testClock(start = Date.UTC(2026, 5, 1, 9, 0, 0)) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

interface Started {
  server: TestServer;
  queue: MemoryQueue;
  checks: (readonly GreylistCheck[] | undefined)[];
}

async function start(
  options: GreylistOptions,
  extra: { plugins?: Plugin[]; dns?: Zone; auth?: boolean; claim?: (address: string) => boolean } = {},
): Promise<Started> {
  const queue = memoryQueue();
  const checks: (readonly GreylistCheck[] | undefined)[] = [];
  const reader: Plugin = {
    name: "test:reads-greylist",
    hooks: {
      data: {
        order: "post",
        handler(transaction) {
          checks.push(transaction.results.get(greylistResult));
          return undefined;
        },
      },
    },
  };
  const server = await startTestServer({
    plugins: [
      greylist(options),
      claimRecipients(extra.claim ? { match: extra.claim } : {}),
      ...(extra.plugins ?? []),
      reader,
      queue.plugin,
    ],
    ...(extra.dns ? { dns: extra.dns } : {}),
    config: {
      listeners: [
        {
          address: "127.0.0.1",
          port: 1,
          proxy: ["127.0.0.1"],
          ...(extra.auth ? { auth: "optional" as const, allowInsecureAuth: true } : {}),
        },
      ],
    },
  });
  servers.push(server);
  return { server, queue, checks };
}

interface Dialogue {
  rcpt: SmtpReplyLines[];
  data: SmtpReplyLines | undefined;
}

/** One transaction from `client` (through PROXY): MAIL, every RCPT, and DATA when a recipient was accepted. */
async function transaction(
  port: number,
  options: { client: string; from?: string; to: string[]; auth?: string },
): Promise<Dialogue> {
  const smtp = await connectSmtp(port);
  try {
    const family = options.client.includes(":") ? "TCP6" : "TCP4";
    const local = family === "TCP6" ? "::1" : "127.0.0.1";
    smtp.write(`PROXY ${family} ${options.client} ${local} 40000 25\r\n`);
    expect((await smtp.read()).code).toBe(220);
    expect((await smtp.command("EHLO client.test")).code).toBe(250);
    if (options.auth) expect((await smtp.command(`AUTH PLAIN ${options.auth}`)).code).toBe(235);
    expect((await smtp.command(`MAIL FROM:<${options.from ?? "sender@example.org"}>`)).code).toBe(250);
    const rcpt: SmtpReplyLines[] = [];
    for (const address of options.to) rcpt.push(await smtp.command(`RCPT TO:<${address}>`));
    let data: SmtpReplyLines | undefined;
    if (rcpt.some((reply) => reply.code === 250)) {
      expect((await smtp.command("DATA")).code).toBe(354);
      smtp.write(buildMessage({ to: options.to.join(", ") }));
      data = await smtp.command(".");
    }
    await smtp.command("QUIT");
    return { rcpt, data };
  } finally {
    smtp.close();
  }
}

const line = (reply: SmtpReplyLines | undefined) =>
  reply ? `${reply.code} ${reply.enhanced} ${reply.text.replace(/^\d\.\d+\.\d+ /, "")}` : "none";

describe("@postern/greylist", () => {
  it("answers a new triplet 451 4.7.1 at RCPT TO with when to retry, and passes the retry after the delay", async () => {
    const clock = testClock();
    const { server, queue, checks } = await start({ clock: clock.now });
    const attempt = () => transaction(server.port, { client: "192.0.2.10", to: ["user@localhost"] });

    const first = await attempt();
    expect(line(first.rcpt[0])).toBe(
      "451 4.7.1 Greylisted, please try again in 5 minutes (after 2026-06-01T09:05:00Z)",
    );
    expect(first.data).toBeUndefined();

    clock.advance(2 * minute);
    expect(line((await attempt()).rcpt[0])).toBe(
      "451 4.7.1 Greylisted, please try again in 3 minutes (after 2026-06-01T09:05:00Z)",
    );

    clock.advance(3 * minute);
    const retry = await attempt();
    expect(retry.rcpt[0]?.code).toBe(250);
    expect(retry.data?.code).toBe(250);

    clock.advance(24 * 60 * minute);
    expect((await attempt()).data?.code).toBe(250);
    expect(queue.messages).toHaveLength(2);
    expect(checks).toEqual([
      [{ outcome: "passed", reason: "retried", recipient: "user@localhost" }],
      [{ outcome: "passed", reason: "known", recipient: "user@localhost" }],
    ]);
  });

  it("counts a client by its /24: a retry from another address of it passes, another /24 is new", async () => {
    const clock = testClock();
    const { server } = await start({ clock: clock.now });
    await transaction(server.port, { client: "192.0.2.10", to: ["user@localhost"] });
    clock.advance(6 * minute);
    expect((await transaction(server.port, { client: "192.0.2.77", to: ["user@localhost"] })).data?.code).toBe(250);
    expect((await transaction(server.port, { client: "192.0.3.10", to: ["user@localhost"] })).rcpt[0]?.code).toBe(451);
  });

  it("counts an IPv6 client by its /64, and takes other prefixes when configured", async () => {
    const clock = testClock();
    const { server } = await start({ clock: clock.now, network: { ipv4: 32, ipv6: 48 } });
    await transaction(server.port, { client: "2001:db8:1:2::1", to: ["user@localhost"] });
    await transaction(server.port, { client: "192.0.2.10", to: ["user@localhost"] });
    clock.advance(6 * minute);
    // Another /64 inside the same /48 passes; another IPv4 address of the same /24 does not (ipv4: 32).
    expect((await transaction(server.port, { client: "2001:db8:1:ffff::9", to: ["user@localhost"] })).data?.code).toBe(
      250,
    );
    expect((await transaction(server.port, { client: "192.0.2.11", to: ["user@localhost"] })).rcpt[0]?.code).toBe(451);
  });

  it("defers only the new recipient of a message; the known one is accepted and the message stored for it", async () => {
    const clock = testClock();
    const { server, queue } = await start({ clock: clock.now });
    await transaction(server.port, { client: "192.0.2.10", to: ["known@localhost"] });
    clock.advance(5 * minute);
    const mixed = await transaction(server.port, { client: "192.0.2.10", to: ["known@localhost", "new@localhost"] });
    expect(mixed.rcpt.map((reply) => reply.code)).toEqual([250, 451]);
    expect(mixed.data?.code).toBe(250);
    expect(queue.messages[0]?.recipients).toEqual(["known@localhost"]);
  });

  it("never greylists an authenticated session", async () => {
    const anyUser: Plugin = { name: "test:any-user", hooks: { auth: () => accept() } };
    const { server, checks } = await start({ clock: testClock().now }, { plugins: [anyUser], auth: true });
    const plain = Buffer.from("\0alice\0secret").toString("base64");
    const sent = await transaction(server.port, { client: "192.0.2.10", to: ["user@localhost"], auth: plain });
    expect(sent.data?.code).toBe(250);
    expect(checks[0]).toEqual([{ outcome: "skipped", reason: "authenticated" }]);
  });

  it("lets allowlisted networks, sender domains and forward-confirmed client names through", async () => {
    const zone: Zone = {
      "10.2.0.192.in-addr.arpa": { PTR: ["mta7.outbound.partner.example"] },
      "mta7.outbound.partner.example": { A: ["192.0.2.10"] },
      // Claims the same name, but the name does not resolve back to it.
      "11.2.0.192.in-addr.arpa": { PTR: ["mta7.outbound.partner.example"] },
    };
    const { server, checks } = await start(
      {
        clock: testClock().now,
        allow: {
          networks: ["198.51.100.0/24"],
          senderDomains: ["lists.example.net"],
          clientNames: ["*.outbound.partner.example"],
        },
      },
      { dns: zone },
    );
    const sent = (client: string, from?: string) =>
      transaction(server.port, { client, to: ["user@localhost"], ...(from ? { from } : {}) });
    expect((await sent("198.51.100.20")).data?.code).toBe(250);
    expect((await sent("203.0.113.5", "news@announce.lists.example.net")).data?.code).toBe(250);
    expect((await sent("192.0.2.10")).data?.code).toBe(250);
    expect((await sent("192.0.2.11")).rcpt[0]?.code).toBe(451);
    expect((await sent("203.0.113.5", "someone@example.net")).rcpt[0]?.code).toBe(451);
    expect(checks.map((check) => check?.[0])).toEqual([
      { outcome: "skipped", reason: "network" },
      { outcome: "skipped", reason: "senderDomain" },
      { outcome: "skipped", reason: "clientName" },
    ]);
  });

  it("allowlists a network after autoAllowAfter passed triplets, and says so in the log", async () => {
    const clock = testClock();
    const { server } = await start({ clock: clock.now, autoAllowAfter: 2 });
    for (const from of ["a@example.org", "b@example.org"]) {
      await transaction(server.port, { client: "192.0.2.10", from, to: ["user@localhost"] });
    }
    clock.advance(5 * minute);
    for (const from of ["a@example.org", "b@example.org"]) {
      expect((await transaction(server.port, { client: "192.0.2.10", from, to: ["user@localhost"] })).data?.code).toBe(
        250,
      );
    }
    // A sender never seen, from another address of the network: passes at once.
    const unseen = await transaction(server.port, { client: "192.0.2.99", from: "c@example.org", to: ["x@localhost"] });
    expect(unseen.data?.code).toBe(250);
    expect(server.logs.map((record) => record.msg)).toContain(
      "greylist: 192.0.2.0/24 passed 2 triplets and is allowlisted",
    );
  });

  it('stage "data": unknown recipients get their 550 at once, the message 451 after DATA, and the retry passes', async () => {
    const clock = testClock();
    const { server, queue } = await start(
      { clock: clock.now, stage: "data" },
      { claim: (address) => address.endsWith("@localhost") },
    );
    const attempt = () =>
      transaction(server.port, {
        client: "192.0.2.10",
        to: ["user@localhost", "other@localhost", "nobody@elsewhere.test"],
      });
    const first = await attempt();
    expect(first.rcpt.map((reply) => reply.code)).toEqual([250, 250, 550]);
    expect(line(first.data)).toBe("451 4.7.1 Greylisted, please try again in 5 minutes (after 2026-06-01T09:05:00Z)");
    expect(queue.messages).toHaveLength(0);
    clock.advance(5 * minute);
    expect((await attempt()).data?.code).toBe(250);
    expect(queue.messages[0]?.recipients.sort()).toEqual(["other@localhost", "user@localhost"]);
  });

  it("does not greylist a recipient a data hook adds, nor mail the server hands to itself", async () => {
    const clock = testClock();
    let context: ServerContext | undefined;
    const archive: Plugin = {
      name: "test:archive",
      setup(server) {
        context = server;
      },
      hooks: {
        async data(transaction) {
          const added = await transaction.addRecipient("archive@localhost");
          return added.ok ? undefined : added.refusal;
        },
      },
    };
    const { server, queue } = await start({ clock: clock.now }, { plugins: [archive] });
    await transaction(server.port, { client: "192.0.2.10", to: ["user@localhost"] });
    clock.advance(5 * minute);
    expect((await transaction(server.port, { client: "192.0.2.10", to: ["user@localhost"] })).data?.code).toBe(250);
    expect(queue.messages[0]?.recipients.sort()).toEqual(["archive@localhost", "user@localhost"]);

    const report = await context!.submit({
      from: "",
      recipients: ["postmaster@localhost"],
      message: buildMessage({ subject: "Delivery report" }),
    });
    expect(report.refused).toEqual([]);
    expect(report.stored.map((recipient) => recipient.address)).toEqual(["postmaster@localhost"]);
  });
});
