import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reject } from "@postern/core";
import outbound from "@postern/outbound";
import maildir from "@postern/store-maildir";
import storePostgres from "@postern/store-postgres";
import { buildMessage, claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { Counter, Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
// The reliability suite's own PostgreSQL (initdb in a temp folder): stopping it touches nobody else.
import { type PostgresInstance, startPostgres } from "../../../tooling/reliability/src/support/postgres-instance.ts";
import metrics from "./index.ts";

let server: TestServer | undefined;
let postgres: PostgresInstance | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  await postgres?.stop();
  postgres = undefined;
});

async function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, type: response.headers.get("content-type") ?? "", body: await response.text() };
}

/** The sum of a metric's samples over every label set. */
function total(text: string, name: string): number {
  return text
    .split("\n")
    .filter((entry) => entry.startsWith(`${name}{`) || entry.startsWith(`${name} `))
    .reduce((sum, entry) => sum + Number(entry.slice(entry.lastIndexOf(" ") + 1)), 0);
}

/** The value of one sample line (`name{labels} value`), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((entry) => entry.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });

const noBob = {
  name: "test:no-bob",
  hooks: {
    rcptTo: (_tx: unknown, rcpt: { address: string }) =>
      rcpt.address.startsWith("bob@") ? reject("5.1.1", "No such user") : undefined,
  },
};

describe("/metrics under real traffic", () => {
  it("counts sessions, transactions, replies, hook verdicts and latency, bytes; merges plugins' registries", async () => {
    const own = new Registry();
    new Counter({ name: "test_plugin_things_total", help: "a plugin's own metric", registers: [own] }).inc(3);
    const plugin = metrics({ listen: { port: 0 } });
    server = await startTestServer({
      plugins: [
        plugin,
        noBob,
        claimRecipients(),
        memoryQueue().plugin,
        { name: "test:own-metrics", metrics: own } as never,
      ],
    });
    for (const to of ["a@example.test", "c@example.test"]) {
      await server.send({ to, raw: buildMessage({ to }) });
    }
    await expect(
      server.send({ to: "bob@example.test", raw: buildMessage({ to: "bob@example.test" }) }),
    ).rejects.toMatchObject({
      responseCode: 550,
    });

    const port = plugin.port!;
    const scraped = await get(port, "/metrics");
    expect(scraped.status).toBe(200);
    expect(scraped.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = scraped.body;
    await expect.poll(async () => total((await get(port, "/metrics")).body, "postern_sessions_total")).toBe(3);
    expect(sample(text, 'postern_transactions_total{outcome="queued"}')).toBe(2);
    expect(sample(text, 'postern_smtp_replies_total{stage="data",class="2xx"}')).toBe(2);
    expect(sample(text, 'postern_smtp_replies_total{stage="rcptTo",class="5xx"}')).toBe(1);
    expect(
      sample(text, 'postern_hook_calls_total{set="smtp",hook="rcptTo",plugin="test:no-bob",verdict="reject"}'),
    ).toBe(1);
    expect(sample(text, 'postern_hook_calls_total{set="smtp",hook="rcptTo",plugin="test:no-bob",verdict="none"}')).toBe(
      2,
    );
    expect(
      sample(text, 'postern_hook_calls_total{set="smtp",hook="queue",plugin="test:memory-queue",verdict="accept"}'),
    ).toBe(2);
    expect(
      sample(text, 'postern_hook_duration_seconds_count{set="smtp",hook="rcptTo",plugin="test:claim-recipients"}'),
    ).toBe(2);
    expect(sample(text, "postern_received_bytes_total")).toBeGreaterThan(100);
    expect(sample(text, "postern_message_size_bytes_count")).toBe(2);
    expect(text).toContain("postern_process_resident_memory_bytes");
    expect(sample(text, "test_plugin_things_total")).toBe(3);

    expect(await get(port, "/healthz")).toMatchObject({ status: 200, body: "ok\n" });
    const ready = await get(port, "/readyz");
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ ready: true, checks: [{ name: "listeners", ok: true }] });
    expect((await get(port, "/nothing")).status).toBe(404);
  });

  it("keeps its socket and its counters across a configuration reload", async () => {
    const port = await freePort();
    server = await startTestServer({
      plugins: [metrics({ listen: { port } }), claimRecipients(), memoryQueue().plugin],
    });
    await server.send({ to: "a@example.test", raw: buildMessage({ to: "a@example.test" }) });
    const listeners = [{ address: "127.0.0.1", port: server.port }];
    await server.server.reload({
      hostname: "mx.test",
      listeners,
      plugins: [metrics({ listen: { port } }), claimRecipients(), memoryQueue().plugin],
    });
    await server.send({ to: "a@example.test", raw: buildMessage({ to: "a@example.test" }) });
    await expect
      .poll(async () => sample((await get(port, "/metrics")).body, 'postern_transactions_total{outcome="queued"}'), {
        timeout: 5000,
      })
      .toBe(2);
  });

  it("/readyz answers 503 naming the store while its PostgreSQL is stopped, 200 again once it is back", async () => {
    postgres = await startPostgres();
    const plugin = metrics({ listen: { port: 0 }, readyTimeoutMs: 3000 });
    server = await startTestServer({
      plugins: [plugin, claimRecipients(), storePostgres({ connectionString: postgres.url, schema: "metrics_readyz" })],
    });
    const port = plugin.port!;
    expect((await get(port, "/readyz")).status).toBe(200);

    await postgres.kill();
    const down = await get(port, "/readyz");
    expect(down.status).toBe(503);
    const state = JSON.parse(down.body) as { ready: boolean; checks: { name: string; ok: boolean; error?: string }[] };
    expect(state.ready).toBe(false);
    expect(state.checks.find((check) => check.name === "@postern/store-postgres")).toMatchObject({ ok: false });
    expect(state.checks.find((check) => check.name === "listeners")).toMatchObject({ ok: true });

    await postgres.start();
    await expect.poll(async () => (await get(port, "/readyz")).status, { timeout: 10_000, interval: 200 }).toBe(200);
  });

  it("/readyz names the Maildir store and the outbound queue when their folders cannot take mail", async () => {
    const folder = await mkdtemp(join(tmpdir(), "postern-readyz-"));
    try {
      const root = join(folder, "mail");
      const spool = join(folder, "queue");
      const plugin = metrics({ listen: { port: 0 } });
      server = await startTestServer({
        plugins: [
          plugin,
          claimRecipients(),
          maildir({ root }),
          outbound({ queue: { type: "fs", dir: spool }, queueRoutes: ["relay"] }),
        ],
      });
      const port = plugin.port!;
      const readyz = async () => {
        const answer = await get(port, "/readyz");
        const state = JSON.parse(answer.body) as { checks: { name: string; ok: boolean; error?: string }[] };
        const failing = state.checks.filter((check) => !check.ok).map((check) => check.name);
        return { status: answer.status, checked: state.checks.map((check) => check.name), failing };
      };
      const up = await readyz();
      expect(up).toMatchObject({ status: 200, failing: [] });
      expect(up.checked).toEqual(expect.arrayContaining(["listeners", "@postern/store-maildir", "@postern/outbound"]));

      // A file where the Maildir root was, and the queue's tmp/ gone: neither can take a message.
      await rm(root, { recursive: true });
      await writeFile(root, "not a directory\n");
      await rm(join(spool, "tmp"), { recursive: true });
      expect(await readyz()).toMatchObject({ status: 503, failing: ["@postern/store-maildir", "@postern/outbound"] });
    } finally {
      await server?.stop();
      server = undefined;
      await rm(folder, { recursive: true, force: true });
    }
  });

  it("refuses a port in use and options it does not know, naming them", async () => {
    const port = await freePort();
    const blocker = createServer().listen(port, "127.0.0.1");
    try {
      await expect(startTestServer({ plugins: [metrics({ listen: { port } })] })).rejects.toThrow(
        new RegExp(`@postern/metrics: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`),
      );
    } finally {
      blocker.close();
    }
    expect(() => metrics({ listen: { port: "x" } } as never)).toThrow(/@postern\/metrics\.listen\.port/);
  });
});
