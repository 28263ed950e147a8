// The admin routes on hono: server-rendered pages for people, the same facts as JSON under /api/
// for `postern status`, `postern trace` and scripts. Reads are GETs; retry, delete and resets are
// POSTs (CSRF-checked for browsers).
import type { ListeningAddress } from "@postern/core";
import type { QueuedMessage, QueueStats } from "@postern/outbound";
import type { RateLimitCounters } from "@postern/rate-limit";
import type { PostgresMailStore } from "@postern/store-postgres";
import { type Context, Hono } from "hono";
import { setCookie } from "hono/cookie";
import { csrf } from "hono/csrf";
import { checkCsrf, csrfToken, requireToken, sameSecret, tokenCookie, usesBearer } from "./access.ts";
import type { History } from "./history.ts";
import {
  loginPage,
  mailboxesPage,
  overviewPage,
  queueListPage,
  queueShowPage,
  rateLimitsPage,
  transactionPage,
  transactionsPage,
} from "./pages.ts";
import type { QueuePlugin } from "./sources.ts";
import type { Status } from "./status.ts";

/** What the routes read; replaced as a whole when a reload brings new plugins. */
export interface AdminSources {
  readonly status: () => Promise<Status>;
  readonly history: History;
  readonly queue: QueuePlugin | undefined;
  readonly mailStores: readonly PostgresMailStore[];
  readonly rateLimits: readonly RateLimitCounters[];
  readonly listening: () => readonly ListeningAddress[];
}

export interface AppOptions {
  readonly token: string | undefined;
  readonly secure: boolean;
  readonly sources: () => AdminSources;
}

type QueueFilter = { text: string; state: string };

function filterQueue(messages: readonly QueuedMessage[], filter: QueueFilter): QueuedMessage[] {
  const text = filter.text.trim().toLowerCase();
  const now = Date.now();
  return messages.filter((message) => {
    const queued = message.recipients.filter((recipient) => recipient.state === "queued");
    if (filter.state === "deferred" && !queued.some((recipient) => recipient.attempts > 0)) return false;
    if (filter.state === "due" && !queued.some((recipient) => recipient.nextAttemptAt <= now)) return false;
    if (filter.state === "held" && !message.recipients.some((recipient) => recipient.state === "held")) return false;
    if (!text) return true;
    return [message.id, message.from, ...message.recipients.map((recipient) => recipient.address)].some((field) =>
      field.toLowerCase().includes(text),
    );
  });
}

const emptyStats: QueueStats = {
  messages: 0,
  queued: 0,
  deferred: 0,
  active: 0,
  held: 0,
  oldestCreatedAt: undefined,
  domains: [],
};

export function createAdminApp(options: AppOptions): Hono {
  const { token, secure } = options;
  const app = new Hono();
  // A browser sends Origin with every POST: one from another site is refused before anything else.
  // An API client with the bearer token has no ambient credential a foreign page could use.
  const sameOrigin = csrf();
  app.use((c, next) => (usesBearer(c) ? next() : sameOrigin(c, next)));
  app.use(requireToken(token));
  app.use(checkCsrf());
  app.use(async (c, next) => {
    await next();
    c.header("x-frame-options", "DENY");
    c.header(
      "content-security-policy",
      "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'",
    );
    c.header("referrer-policy", "no-referrer");
    c.header("cache-control", "no-store");
  });

  const flashOf = (value: string | undefined) => (value && value.length < 200 ? value : undefined);

  // Sign-in (only when a token file is configured).
  app.get("/login", (c) => c.html(loginPage(csrfToken(c, secure), c.req.query("failed") !== undefined)));
  app.post("/login", async (c) => {
    const body = await c.req.parseBody();
    const given = typeof body.token === "string" ? body.token : undefined;
    if (token === undefined || !sameSecret(given, token)) return c.redirect("/login?failed");
    setCookie(c, tokenCookie, token, { httpOnly: true, sameSite: "Strict", path: "/", secure });
    return c.redirect("/");
  });

  // Overview and status.
  app.get("/", async (c) => c.html(overviewPage(await options.sources().status())));
  app.get("/api/status", async (c) => c.json(await options.sources().status()));

  // Recent transactions.
  const historyQuery = (c: { req: { query(name: string): string | undefined } }) => ({
    text: c.req.query("q") ?? "",
    outcome: c.req.query("outcome") ?? "",
  });
  app.get("/transactions", async (c) => {
    const filters = historyQuery(c);
    const records = await options.sources().history.list({
      limit: 200,
      ...(filters.text ? { text: filters.text } : {}),
      ...(filters.outcome ? { outcome: filters.outcome } : {}),
    });
    return c.html(transactionsPage(records, filters));
  });
  app.get("/api/transactions", async (c) => {
    const filters = historyQuery(c);
    const limit = Math.min(Number(c.req.query("limit") ?? 100) || 100, 1000);
    return c.json(
      await options.sources().history.list({
        limit,
        ...(filters.text ? { text: filters.text } : {}),
        ...(filters.outcome ? { outcome: filters.outcome } : {}),
      }),
    );
  });
  app.get("/transactions/:id", async (c) => {
    const sources = options.sources();
    const record = await sources.history.get(c.req.param("id"));
    if (!record) return c.html(transactionsPage([], { text: c.req.param("id"), outcome: "" }), 404);
    const inQueue = sources.queue ? (await sources.queue.store.get(record.queueId)) !== undefined : false;
    return c.html(transactionPage(record, inQueue));
  });
  app.get("/api/transactions/:id", async (c) => {
    const record = await options.sources().history.get(c.req.param("id"));
    return record ? c.json(record) : c.json({ error: `no recent transaction ${c.req.param("id")}` }, 404);
  });

  // The outbound queue.
  const queueOf = () => options.sources().queue;
  const queueFilter = (c: { req: { query(name: string): string | undefined } }): QueueFilter => ({
    text: c.req.query("q") ?? "",
    state: c.req.query("state") ?? "",
  });
  app.get("/queue", async (c) => {
    const queue = queueOf();
    if (!queue) return c.html(queueListPage([], emptyStats, queueFilter(c), "No outbound queue is configured."));
    const [messages, stats] = await Promise.all([queue.store.list({ limit: 1000 }), queue.store.stats()]);
    return c.html(
      queueListPage(filterQueue(messages, queueFilter(c)), stats, queueFilter(c), flashOf(c.req.query("done"))),
    );
  });
  app.get("/api/queue", async (c) => {
    const queue = queueOf();
    if (!queue) return c.json({ error: "no outbound queue is configured" }, 404);
    return c.json(filterQueue(await queue.store.list({ limit: 1000 }), queueFilter(c)));
  });
  app.get("/queue/:id", async (c) => {
    const message = await queueOf()?.store.get(c.req.param("id"));
    if (!message) return c.redirect(`/queue?done=${encodeURIComponent(`${c.req.param("id")} is not in the queue`)}`);
    return c.html(queueShowPage(message, csrfToken(c, secure), flashOf(c.req.query("done"))));
  });
  app.get("/api/queue/:id", async (c) => {
    const message = await queueOf()?.store.get(c.req.param("id"));
    return message ? c.json(message) : c.json({ error: `${c.req.param("id")} is not in the queue` }, 404);
  });
  const queueAction = async (c: Context) => {
    const queue = queueOf();
    const id = c.req.param("id")!;
    const action = c.req.param("action");
    if (!queue) return usesBearer(c) ? c.json({ error: "no outbound queue is configured" }, 404) : c.redirect("/queue");
    if (action === "retry") {
      const due = await queue.store.retry(id);
      queue.flush();
      if (usesBearer(c)) return c.json({ id, due });
      const done = `${id}: ${due} recipient${due === 1 ? "" : "s"} due now`;
      return c.redirect(`/queue/${id}?done=${encodeURIComponent(done)}`);
    }
    if (action === "hold" || action === "release") {
      const changed = action === "hold" ? await queue.store.hold(id) : await queue.store.unhold(id);
      if (action === "release") queue.flush();
      if (usesBearer(c)) return c.json({ id, [action === "hold" ? "held" : "released"]: changed });
      const done = `${id}: ${changed} recipient${changed === 1 ? "" : "s"} ${action === "hold" ? "on hold" : "released"}`;
      return c.redirect(`/queue/${id}?done=${encodeURIComponent(done)}`);
    }
    const deleted = await queue.store.delete(id);
    if (usesBearer(c)) return c.json({ id, deleted });
    const done = deleted ? `${id} deleted` : `${id} was not in the queue`;
    return c.redirect(`/queue?done=${encodeURIComponent(done)}`);
  };
  app.post("/queue/:id/:action{retry|hold|release|delete}", queueAction);
  app.post("/api/queue/:id/:action{retry|hold|release|delete}", queueAction);

  // Mailboxes (store-postgres).
  app.get("/mailboxes", async (c) => {
    const stores = options.sources().mailStores;
    const mailbox = (c.req.query("mailbox") ?? "").trim();
    if (!mailbox || stores.length === 0) return c.html(mailboxesPage(stores.length > 0, mailbox, []));
    try {
      const rows = (await Promise.all(stores.map((store) => store.list(mailbox, { limit: 200 })))).flat();
      return c.html(mailboxesPage(true, mailbox, rows));
    } catch (error) {
      return c.html(mailboxesPage(true, mailbox, [], (error as Error).message), 503);
    }
  });

  // Rate-limit counters (rate-limit with Redis).
  app.get("/rate-limits", async (c) => {
    const counters = options.sources().rateLimits;
    const query = (c.req.query("query") ?? "").trim();
    const message = flashOf(c.req.query("done"));
    if (!query || counters.length === 0) {
      return c.html(rateLimitsPage(counters.length > 0, query, [], csrfToken(c, secure), message));
    }
    try {
      const rows = (await Promise.all(counters.map((counter) => counter.find(query)))).flat();
      return c.html(rateLimitsPage(true, query, rows, csrfToken(c, secure), message));
    } catch (error) {
      return c.html(rateLimitsPage(true, query, [], csrfToken(c, secure), (error as Error).message), 400);
    }
  });
  app.post("/rate-limits/reset", async (c) => {
    const query = (c.req.query("query") ?? "").trim();
    const reset = (await Promise.all(options.sources().rateLimits.map((counter) => counter.reset(query)))).flat();
    const done = `${reset.length} counter${reset.length === 1 ? "" : "s"} reset`;
    if (usesBearer(c)) return c.json({ reset: reset.length });
    return c.redirect(`/rate-limits?query=${encodeURIComponent(query)}&done=${encodeURIComponent(done)}`);
  });

  return app;
}
