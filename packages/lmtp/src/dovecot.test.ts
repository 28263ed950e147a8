// Interop with a real Dovecot (Debian's dovecot-imapd + dovecot-lmtpd): Dovecot serves over IMAP
// what @postern/store-maildir wrote, and @postern/lmtp delivers into Dovecot's LMTP — over TCP and a
// Unix socket — with per-recipient outcomes turned into one SMTP reply.
import type { Plugin } from "@postern/core";
import maildir from "@postern/store-maildir";
import {
  awkwardMessage,
  buildMessage,
  claimRecipients,
  type SendError,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import lmtp, { type LmtpOptions } from "./index.ts";
import { type Dovecot, startDovecot, withoutReturnPath } from "./test-dovecot.ts";
import { type CuttingProxy, startCuttingProxy } from "./test-proxy.ts";

const alice = "alice@example.test";
const bob = "bob@example.test";
const users = [{ address: alice }, { address: bob }];
let dovecot: Dovecot;
const servers: TestServer[] = [];

beforeAll(async () => {
  dovecot = await startDovecot({ users });
}, 60_000);
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop();
  await dovecot.setUsers(users);
  await dovecot.clearMail();
});
afterAll(async () => {
  await dovecot?.stop();
});

async function serve(...plugins: Plugin[]): Promise<TestServer> {
  const server = await startTestServer({ plugins: [claimRecipients(), ...plugins] });
  servers.push(server);
  return server;
}

function viaTcp(options: Partial<LmtpOptions> = {}): Plugin {
  return lmtp({ host: "127.0.0.1", port: dovecot.lmtpPort, ...options });
}

async function refusal(promise: Promise<unknown>): Promise<SendError> {
  const error = await promise.then(
    () => undefined,
    (caught: SendError) => caught,
  );
  expect(error, "the message was accepted").toBeDefined();
  return error!;
}

/** What Postern handed over: the stored copy without the Return-Path Dovecot adds. */
function returnPath(stored: Buffer): string {
  return stored.subarray(0, stored.indexOf("\r\n") + 2).toString();
}

describe("Dovecot reads what @postern/store-maildir wrote", () => {
  it("serves the messages over IMAP byte for byte, also after it indexed the mailbox", async () => {
    const server = await serve(maildir({ root: dovecot.mailRoot }));
    const first = awkwardMessage("maildir to imap 1", alice);
    await server.send({ to: [alice, bob], raw: first });
    // Postern runs as root here; Dovecot accesses mail as the mail user, as an operator would set up.
    await dovecot.chownMail();

    const onDisk = await dovecot.readMaildir(alice);
    expect(onDisk).toHaveLength(1);
    expect(onDisk[0]!.subarray(onDisk[0]!.length - first.length).equals(first)).toBe(true);
    const overImap = await dovecot.fetchImap(alice);
    expect(overImap).toHaveLength(1);
    expect(overImap[0]!.equals(onDisk[0]!)).toBe(true);
    expect((await dovecot.fetchImap(bob))[0]!.equals(onDisk[0]!)).toBe(true);

    // Dovecot has now written its index and uidlist into the Maildir; Postern keeps delivering.
    const second = awkwardMessage("maildir to imap 2", alice);
    await server.send({ to: alice, raw: second });
    await dovecot.chownMail();
    const both = await dovecot.fetchImap(alice);
    expect(both).toHaveLength(2);
    expect(both[1]!.subarray(both[1]!.length - second.length).equals(second)).toBe(true);
    expect(both[1]!.toString()).toMatch(/^Received: from client\.test /);
  });
});

describe("@postern/lmtp delivers into Dovecot's LMTP", () => {
  it("over TCP; Dovecot serves the message over IMAP with only its Return-Path added", async () => {
    const server = await serve(viaTcp());
    const raw = awkwardMessage("lmtp over tcp", alice);
    const result = await server.send({ to: [alice, bob], raw });
    expect(result.response).toMatch(/^250 2\.0\.0 /);
    for (const user of [alice, bob]) {
      const [copy, ...more] = await dovecot.fetchImap(user);
      expect(more).toHaveLength(0);
      expect(returnPath(copy!)).toBe("Return-Path: <sender@example.org>\r\n");
      expect(copy!.subarray(copy!.length - raw.length).equals(raw)).toBe(true);
      expect(copy!.toString()).toContain("\r\nReceived: from client.test ");
    }
  });

  it("over a Unix socket", async () => {
    const server = await serve(lmtp({ socket: dovecot.lmtpSocket }));
    const raw = buildMessage({ subject: "lmtp over a unix socket" });
    await server.send({ to: alice, raw });
    const copies = await dovecot.fetchImap(alice);
    expect(copies).toHaveLength(1);
    expect(copies[0]!.subarray(copies[0]!.length - raw.length).equals(raw)).toBe(true);
  });

  it("the null sender (bounces) is passed on as <>", async () => {
    const server = await serve(viaTcp());
    await server.send({ from: "", to: alice, raw: buildMessage({ subject: "a bounce" }) });
    expect(returnPath((await dovecot.readMaildir(alice))[0]!)).toBe("Return-Path: <>\r\n");
  });
});

describe("when some recipients fail", () => {
  it("a full mailbox defers the message; the retry reaches only the recipient still missing it", async () => {
    await dovecot.setUsers([{ address: alice }, { address: bob, quotaBytes: 1 }]);
    const server = await serve(viaTcp());
    const raw = buildMessage({ to: [alice, bob], subject: "partly delivered" });
    const error = await refusal(server.send({ to: [alice, bob], raw }));
    // Dovecot: 452 4.2.2 Quota exceeded — passed on as a temporary failure of the message.
    expect(error.response).toMatch(/^450 4\.2\.2 Delivery failed for now <bob@example\.test>: 452 4\.2\.2 /);
    expect(error.response).toContain("delivered to <alice@example.test>; a retry goes only to the others");
    expect(await dovecot.readMaildir(alice)).toHaveLength(1);
    expect(await dovecot.readMaildir(bob)).toHaveLength(0);

    // Bob gets more room (an explicit limit: without one Dovecot keeps the one in maildirsize);
    // the sender retries the same message to both.
    await dovecot.setUsers([{ address: alice }, { address: bob, quotaBytes: 100_000_000 }]);
    const retry = await server.send({ to: [alice, bob], raw });
    expect(retry.response).toMatch(/^250 /);
    expect(await dovecot.readMaildir(alice)).toHaveLength(1);
    expect(await dovecot.readMaildir(bob)).toHaveLength(1);
  });

  it("without retry memory the retry duplicates the copy already delivered (the trade-off it avoids)", async () => {
    await dovecot.setUsers([{ address: alice }, { address: bob, quotaBytes: 1 }]);
    const server = await serve(viaTcp({ retryMemory: false }));
    const raw = buildMessage({ to: [alice, bob], subject: "duplicated" });
    await refusal(server.send({ to: [alice, bob], raw }));
    await dovecot.setUsers([{ address: alice }, { address: bob, quotaBytes: 100_000_000 }]);
    await server.send({ to: [alice, bob], raw });
    expect(await dovecot.readMaildir(alice)).toHaveLength(2);
    expect(await dovecot.readMaildir(bob)).toHaveLength(1);
  });

  it("an unknown user rejects the message, naming who did get it", async () => {
    const server = await serve(viaTcp());
    const stranger = "nobody@example.test";
    const error = await refusal(
      server.send({ to: [alice, stranger], raw: buildMessage({ subject: "one unknown recipient" }) }),
    );
    expect(error.response).toMatch(/^550 5\.1\.1 Delivery failed <nobody@example\.test>: 550 5\.1\.1 /);
    expect(error.response).toContain("delivered to <alice@example.test>");
    expect(await dovecot.readMaildir(alice)).toHaveLength(1);
  });

  it("only unknown users: rejected with Dovecot's status, nothing delivered", async () => {
    const server = await serve(viaTcp());
    const error = await refusal(server.send({ to: "nobody@example.test", raw: buildMessage() }));
    expect(error.response).toMatch(/^550 5\.1\.1 Delivery failed <nobody@example\.test>: 550 5\.1\.1 /);
    expect(error.response).not.toContain("delivered to");
  });

  it("an LMTP server that is not there → 451 4.4.1", async () => {
    const server = await serve(lmtp({ socket: `${dovecot.dir}/no-such-socket` }));
    const error = await refusal(server.send({ to: alice, raw: buildMessage() }));
    expect(error.response).toMatch(/^451 4\.4\.1 Mailbox server not reachable/);
  });
});

describe("sessions reused across messages (through a proxy that counts connections)", () => {
  let proxy: CuttingProxy;
  beforeAll(async () => {
    proxy = await startCuttingProxy(dovecot.lmtpPort);
  });
  afterAll(async () => {
    await proxy.close();
  });
  const viaProxy = (options: Partial<LmtpOptions> = {}) => lmtp({ host: "127.0.0.1", port: proxy.port, ...options });
  /** Messages in a Maildir as Postern handed them over (Dovecot's Return-Path taken off). */
  const stored = async (user: string) => (await dovecot.readMaildir(user)).map(withoutReturnPath);

  it("delivers messages one after another over one session, each byte-exact", async () => {
    const before = proxy.connections;
    const server = await serve(viaProxy());
    const sent = Array.from({ length: 5 }, (_, n) => awkwardMessage(`reused ${n}`, alice));
    for (const raw of sent) expect((await server.send({ to: [alice, bob], raw })).response).toMatch(/^250 /);
    expect(proxy.connections - before).toBe(1);
    for (const user of [alice, bob]) {
      const copies = await stored(user);
      expect(copies).toHaveLength(5);
      for (const [n, copy] of copies.entries()) {
        expect(copy.subarray(copy.length - sent[n]!.length).equals(sent[n]!)).toBe(true);
      }
    }
  });

  it("shares at most `max` sessions among many deliveries at once; every message arrives once", async () => {
    const before = proxy.connections;
    const server = await serve(viaProxy({ connections: { max: 3 } }));
    const sent = Array.from({ length: 24 }, (_, n) =>
      buildMessage({ subject: `concurrent ${n}`, text: `body ${n}\n` }),
    );
    const replies = await Promise.all(sent.map((raw, n) => server.send({ to: n % 2 ? alice : bob, raw })));
    for (const result of replies) expect(result.response).toMatch(/^250 /);
    expect(proxy.connections - before).toBeLessThanOrEqual(3);
    const subjects = [...(await stored(alice)), ...(await stored(bob))].map((copy) =>
      /^Subject: (.*)$/m.exec(copy.toString("latin1"))?.[1]?.trim(),
    );
    expect(subjects.sort()).toEqual(sent.map((_, n) => `concurrent ${n}`).sort());
  });

  it("resets the session after Dovecot refused every recipient, and delivers the next message on it", async () => {
    const before = proxy.connections;
    const server = await serve(viaProxy());
    const error = await refusal(server.send({ to: "nobody@example.test", raw: buildMessage() }));
    expect(error.response).toMatch(/^550 5\.1\.1 /);
    const raw = buildMessage({ subject: "after the refusal" });
    expect((await server.send({ to: alice, raw })).response).toMatch(/^250 /);
    expect(proxy.connections - before).toBe(1);
    expect(await stored(alice)).toHaveLength(1);
  });

  it("a full mailbox (452 after the message) leaves the session usable for the next message", async () => {
    await dovecot.setUsers([{ address: alice }, { address: bob, quotaBytes: 1 }]);
    const before = proxy.connections;
    const server = await serve(viaProxy());
    const error = await refusal(server.send({ to: [alice, bob], raw: buildMessage({ subject: "bob is full" }) }));
    expect(error.response).toMatch(/^450 4\.2\.2 /);
    expect((await server.send({ to: alice, raw: buildMessage({ subject: "next" }) })).response).toMatch(/^250 /);
    expect(proxy.connections - before).toBe(1);
    expect(await stored(alice)).toHaveLength(2);
  });

  it("opens a new session when the idle one was closed on the server's side", async () => {
    const before = proxy.connections;
    const server = await serve(viaProxy());
    expect((await server.send({ to: alice, raw: buildMessage({ subject: "first" }) })).response).toMatch(/^250 /);
    proxy.closeConnections();
    expect((await server.send({ to: alice, raw: buildMessage({ subject: "second" }) })).response).toMatch(/^250 /);
    expect(proxy.connections - before).toBe(2);
    await vi.waitFor(async () => expect(await stored(alice)).toHaveLength(2));
  });
});

describe("options", () => {
  it("reports a bad option in one line naming the key", () => {
    expect(() => lmtp({})).toThrow(/^@postern\/lmtp\.host: expected host \(e\.g\. "127\.0\.0\.1"\) or socket/);
    expect(() => lmtp({ host: "127.0.0.1", socket: "/run/lmtp" })).toThrow(
      /^@postern\/lmtp\.socket: expected either host \(TCP\) or socket \(Unix\), not both/,
    );
    expect(() => lmtp({ host: "127.0.0.1", port: 0 })).toThrow(/^@postern\/lmtp\.port: expected a port number/);
  });
});
