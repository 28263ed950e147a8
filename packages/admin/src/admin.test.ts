import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildMessage, claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import type { StoredRecord } from "./history.ts";
import admin from "./index.ts";
import type { Status } from "./status.ts";
import {
  type AdminTestServer,
  type StoresTestServer,
  startAdminServer,
  startStoresServer,
  tokenFile,
} from "./test-support/admin-server.ts";

const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const server of running.splice(0).reverse()) await server.stop();
});

async function started(options: Parameters<typeof startAdminServer>[0] = {}): Promise<AdminTestServer> {
  const server = await startAdminServer(options);
  running.push(server);
  return server;
}

const cookieOf = (response: Response, name: string) =>
  response.headers
    .getSetCookie()
    .map((cookie) => cookie.split(";")[0]!)
    .find((cookie) => cookie.startsWith(`${name}=`));

describe("the admin API on loopback", () => {
  it("reports status, recent transactions with their trail, and the queue", async () => {
    const test = await started();
    const queued = await test.traffic();

    const status = (await (await fetch(`${test.base}/api/status`)).json()) as Status;
    expect(status).toMatchObject({ hostname: "mx.test", queue: { messages: 1, queued: 1 } });
    expect(status.listeners).toHaveLength(1);
    expect(status.plugins).toContain("@postern/outbound");
    expect(status.versions).toEqual({
      core: expect.stringMatching(/^\d+\.\d+\.\d+/),
      admin: expect.stringMatching(/^\d+\.\d+\.\d+/),
      node: process.version,
    });
    await expect
      .poll(async () => ((await (await fetch(`${test.base}/api/status`)).json()) as Status).transactions)
      .toMatchObject({
        queued: 1,
      });

    const records = (await (await fetch(`${test.base}/api/transactions`)).json()) as StoredRecord[];
    expect(records.map((record) => record.outcome)).toEqual(["abandoned", "queued"]);
    const refused = records[0]!;
    expect(refused.recipients).toEqual([
      expect.objectContaining({
        address: "bob@blocked.test",
        outcome: "refused",
        reply: "550 5.7.1 Recipient domain blocked by policy",
      }),
    ]);
    expect(refused.trail).toContainEqual(
      expect.objectContaining({
        hook: "rcptTo",
        plugin: "test:policy",
        verdict: "reject",
        reply: "550 5.7.1 Recipient domain blocked by policy",
      }),
    );
    const one = (await (await fetch(`${test.base}/api/transactions/${queued}`)).json()) as StoredRecord;
    expect(one).toMatchObject({ queueId: queued, outcome: "queued", from: "alice@sender.test", node: "mx.test" });
    expect(one.trail.map((step) => `${step.hook} ${step.plugin} ${step.verdict}`)).toContain(
      "queue @postern/outbound accept",
    );
    expect((await fetch(`${test.base}/api/transactions/NOSUCHID`)).status).toBe(404);

    const inQueue = (await (await fetch(`${test.base}/api/queue`)).json()) as { id: string }[];
    expect(inQueue.map((message) => message.id)).toEqual([queued]);
    expect(((await (await fetch(`${test.base}/api/queue?q=nobody`)).json()) as unknown[]).length).toBe(0);
  });

  it("changes state only by POST with the page's CSRF token, from our own origin", async () => {
    const test = await started();
    const queued = await test.traffic();
    // No token, no cookie: refused.
    const bare = await fetch(`${test.base}/queue/${queued}/delete`, { method: "POST", body: new URLSearchParams() });
    expect(bare.status).toBe(403);
    // A form posted from another site: refused by origin whatever it carries.
    const page = await fetch(`${test.base}/queue/${queued}`);
    const cookie = cookieOf(page, "postern_csrf")!;
    const token = cookie.split("=")[1]!;
    const foreign = await fetch(`${test.base}/queue/${queued}/delete`, {
      method: "POST",
      headers: { cookie, origin: "https://evil.test", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: token }),
    });
    expect(foreign.status).toBe(403);
    // GET never changes anything.
    expect((await fetch(`${test.base}/queue/${queued}/delete`)).status).toBe(404);
    expect(((await (await fetch(`${test.base}/api/queue`)).json()) as unknown[]).length).toBe(1);
    // The page's own form: retried.
    const retried = await fetch(`${test.base}/queue/${queued}/retry`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie, origin: test.base, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: token }),
    });
    expect(retried.status).toBe(302);
    expect(decodeURIComponent(retried.headers.get("location")!)).toBe(
      `/queue/${queued}?done=${queued}: 1 recipient due now`,
    );
  });
});

describe("holding a queued message", () => {
  it("holds it (the queue says so, a filter finds it, retry leaves it) and releases it, by the API and the page", async () => {
    const test = await started();
    const queued = await test.traffic();
    const post = (path: string) =>
      fetch(`${test.base}${path}`, { method: "POST", headers: { authorization: "Bearer x" } });
    // The API without a configured token takes a bearer header as an API client's mark (no CSRF).
    expect(await (await post(`/api/queue/${queued}/hold`)).json()).toEqual({ id: queued, held: 1 });
    const message = (await (await fetch(`${test.base}/api/queue/${queued}`)).json()) as {
      recipients: { state: string }[];
    };
    expect(message.recipients.map((recipient) => recipient.state)).toEqual(["held"]);
    expect(((await (await fetch(`${test.base}/api/status`)).json()) as Status).queue).toMatchObject({
      queued: 0,
      held: 1,
    });
    expect(await (await post(`/api/queue/${queued}/retry`)).json()).toEqual({ id: queued, due: 0 });
    const list = await (await fetch(`${test.base}/queue?state=held`)).text();
    expect(list).toContain(`href="/queue/${queued}"`);
    expect(list).toContain("on hold");
    expect(await (await fetch(`${test.base}/queue/${queued}`)).text()).toContain(`action="/queue/${queued}/release"`);

    expect(await (await post(`/api/queue/${queued}/release`)).json()).toEqual({ id: queued, released: 1 });
    expect(await (await fetch(`${test.base}/queue?state=held`)).text()).not.toContain(`href="/queue/${queued}"`);
    expect(await (await fetch(`${test.base}/queue/${queued}`)).text()).toContain(`action="/queue/${queued}/hold"`);
  });
});

describe("the admin API with a token", () => {
  it("wants the bearer token for the API and a sign-in for pages", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-admin-token-"));
    running.push({ stop: () => rm(dir, { recursive: true, force: true }) });
    const token = "s3cret-token-for-the-admin-api";
    const test = await started({ tokenFile: await tokenFile(dir, token) });
    const queued = await test.traffic();

    expect((await fetch(`${test.base}/api/status`)).status).toBe(401);
    expect(
      (await fetch(`${test.base}/api/status`, { headers: { authorization: "Bearer wrong-token-wrong-token" } })).status,
    ).toBe(401);
    const page = await fetch(`${test.base}/queue`, { redirect: "manual" });
    expect(page.status).toBe(302);
    expect(page.headers.get("location")).toBe("/login");

    const headers = { authorization: `Bearer ${token}` };
    expect((await fetch(`${test.base}/api/status`, { headers })).status).toBe(200);
    const deleted = await fetch(`${test.base}/api/queue/${queued}/delete`, { method: "POST", headers });
    expect(await deleted.json()).toEqual({ id: queued, deleted: true });
    expect(((await (await fetch(`${test.base}/api/queue`, { headers })).json()) as unknown[]).length).toBe(0);
  });

  it("refuses to listen off loopback without TLS and a token, and a short token", async () => {
    expect(() => admin({ listen: { address: "0.0.0.0" } })).toThrow(
      /@postern\/admin\.listen\.address: expected a loopback address .*needs both tls and tokenFile/,
    );
    expect(() => admin({ listen: { address: "192.0.2.10" }, tokenFile: "/etc/postern/admin.token" })).toThrow(
      /listen\.address/,
    );
    const dir = await mkdtemp(join(tmpdir(), "postern-admin-token-"));
    running.push({ stop: () => rm(dir, { recursive: true, force: true }) });
    await expect(started({ tokenFile: await tokenFile(dir, "short") })).rejects.toThrow(/16 characters or more/);
  });
});

describe("recent transactions in PostgreSQL", () => {
  it("shows every node's transactions on every node", async () => {
    const schema = `admin_test_${process.pid}_${Date.now()}`;
    const connectionString = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
    const history = { postgres: { connectionString, schema } };
    const nodes: TestServer[] = [];
    const admins = [
      admin({ listen: { port: 0 }, history, node: "mx1" }),
      admin({ listen: { port: 0 }, history, node: "mx2" }),
    ];
    for (const plugin of admins) {
      const node = await startTestServer({ plugins: [plugin, claimRecipients(), memoryQueue().plugin] });
      nodes.push(node);
      running.push(node);
    }
    running.push({
      async stop() {
        const client = new pg.Client({ connectionString });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await client.end();
      },
    });
    await nodes[0]!.send({ to: "a@example.test", raw: buildMessage({ to: "a@example.test" }) });
    await nodes[1]!.send({ to: "b@example.test", raw: buildMessage({ to: "b@example.test" }) });
    await expect
      .poll(async () => {
        const records = (await (
          await fetch(`http://127.0.0.1:${admins[1]!.port}/api/transactions`)
        ).json()) as StoredRecord[];
        return records.map((record) => record.node).sort();
      })
      .toEqual(["mx1", "mx2"]);
  });
});

describe("mailboxes and rate-limit counters", () => {
  it("lists a store-postgres mailbox, shows a client's Redis counters and resets them by POST", async () => {
    const test: StoresTestServer = await startStoresServer();
    running.push(test);
    const queueId = await test.traffic("for the mailbox page");
    await test.traffic("a second one");

    const mailbox = await fetch(`${test.base}/mailboxes?mailbox=alice@example.test`);
    expect(mailbox.status).toBe(200);
    const listed = await mailbox.text();
    expect(listed).toContain("for the mailbox page");
    expect(listed).toContain("a second one");
    expect(listed).toContain(`href="/transactions/${queueId}"`);
    expect(await (await fetch(`${test.base}/mailboxes?mailbox=nobody@example.test`)).text()).toContain(
      "No message in nobody@example.test.",
    );

    const page = await fetch(`${test.base}/rate-limits?query=ip=127.0.0.1`);
    const counters = await page.text();
    expect(counters).toMatch(
      /<td>messages-ip-3600s<\/td><td class="mono">ip=127\.0\.0\.1<\/td><td class="num">2<\/td>/,
    );
    const cookie = cookieOf(page, "postern_csrf")!;
    const reset = await fetch(`${test.base}/rate-limits/reset?query=${encodeURIComponent("ip=127.0.0.1")}`, {
      method: "POST",
      redirect: "manual",
      headers: { cookie, origin: test.base, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _csrf: cookie.split("=")[1]! }),
    });
    expect(reset.status).toBe(302);
    expect(decodeURIComponent(reset.headers.get("location")!)).toMatch(/done=1 counter reset$/);
    expect(await (await fetch(`${test.base}/rate-limits?query=ip=127.0.0.1`)).text()).toContain("No counter matches.");
    // A query that is no counter key is refused, naming why.
    expect((await fetch(`${test.base}/rate-limits?query=address=x`)).status).toBe(400);
  });

  it("says when neither is configured", async () => {
    const test = await started();
    expect(await (await fetch(`${test.base}/mailboxes`)).text()).toContain(
      "No @postern/store-postgres plugin is configured.",
    );
    expect(await (await fetch(`${test.base}/rate-limits`)).text()).toContain(
      "No @postern/rate-limit plugin with Redis counters is configured.",
    );
  });
});
