// The web UI's pages, rendered on the server with hono's html template (every interpolation is
// escaped). No client code but a confirm() on delete: each action is a form that POSTs.
import type { QueuedMessage, QueueStats } from "@postern/outbound";
import type { TrailStep } from "@postern/transaction-log";
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { csrfField } from "./access.ts";
import type { StoredRecord } from "./history.ts";
import type { Status } from "./status.ts";

type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

const style = raw(`
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.4rem;align-items:center}
header a{color:#cfd8e3;text-decoration:none}header a.here{color:#fff;font-weight:600}
header strong{font-size:15px;margin-right:1rem}
main{padding:1rem 1.2rem;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5rem 0 1rem}
th,td{padding:.35rem .55rem;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:13px}
.ok{color:#17692e}.bad{color:#a3261b}.warn{color:#8a5a00}.muted{color:#6b7480}
.flash{background:#e7f4ea;border:1px solid #b5dcbf;padding:.5rem .8rem;margin:.5rem 0}
form.inline{display:inline}button{font:inherit;padding:.25rem .8rem;cursor:pointer}
button.danger{color:#a3261b}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dt{color:#6b7480}input[type=text],select{font:inherit;padding:.2rem .4rem}
`);

const sections = [
  ["/", "Overview"],
  ["/queue", "Queue"],
  ["/transactions", "Transactions"],
  ["/mailboxes", "Mailboxes"],
  ["/rate-limits", "Rate limits"],
] as const;

export function layout(title: string, here: string, body: Html, flash?: string): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title} · Postern</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${style}</style></head>
<body><header><strong>Postern</strong>${sections.map(
    ([path, name]) => html`<a href="${path}" class="${path === here ? "here" : ""}">${name}</a>`,
  )}</header>
<main><h1>${title}</h1>${flash ? html`<p class="flash" role="status">${flash}</p>` : ""}${body}</main></body></html>`;
}

const when = (epochMs: number | undefined) =>
  epochMs === undefined
    ? ""
    : new Date(epochMs)
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z");
const age = (epochMs: number) => {
  const seconds = Math.max(0, Math.round((Date.now() - epochMs) / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
};
const ms = (value: number) => (value < 10 ? value.toFixed(2) : value.toFixed(0));
const outcomeClass = (outcome: string) =>
  outcome === "queued" ? "ok" : outcome === "refused" ? "bad" : outcome === "discarded" ? "warn" : "muted";
const verdictClass = (verdict: string) =>
  verdict === "accept"
    ? "ok"
    : ["reject", "error", "timeout", "disconnect"].includes(verdict)
      ? "bad"
      : verdict === "defer"
        ? "warn"
        : "muted";

export function postButton(action: string, label: string, csrf: string, options: { danger?: boolean } = {}): Html {
  return html`<form class="inline" method="post" action="${action}"${
    options.danger ? raw(` onsubmit="return confirm('${label}?')"`) : ""
  }><input type="hidden" name="${csrfField}" value="${csrf}"><button type="submit"${
    options.danger ? raw(' class="danger"') : ""
  }>${label}</button></form>`;
}

export function overviewPage(status: Status): Html {
  return layout(
    "Overview",
    "/",
    html`<dl>
<dt>Host</dt><dd>${status.hostname} (node ${status.node})</dd>
<dt>Up since</dt><dd>${when(status.startedAt)} (${age(status.startedAt)})</dd>
<dt>Sessions open</dt><dd>${status.sessions}</dd>
<dt>Transactions</dt><dd>${
      Object.entries(status.transactions)
        .map(([outcome, count]) => `${count} ${outcome}`)
        .join(", ") || "none yet"
    }</dd>
<dt>Queue</dt><dd>${status.queue ? `${status.queue.messages} messages, ${status.queue.queued} recipients (${status.queue.deferred} deferred)` : "no outbound queue"}</dd>
<dt>Plugins</dt><dd>${status.plugins.join(", ")}</dd>
<dt>Versions</dt><dd>@postern/core ${status.versions.core ?? "?"}, @postern/admin ${status.versions.admin ?? "?"}, Node.js ${status.versions.node}</dd>
</dl>
<h2>Listeners</h2>
<table><tr><th>Name</th><th>Address</th><th>TLS</th></tr>${status.listeners.map(
      (listener) =>
        html`<tr><td>${listener.name}</td><td class="mono">${listener.address}:${listener.port}</td><td>${listener.tls}</td></tr>`,
    )}</table>`,
  );
}

export function queueListPage(
  messages: readonly QueuedMessage[],
  stats: QueueStats,
  filters: { text: string; state: string },
  flash?: string,
): Html {
  return layout(
    "Outbound queue",
    "/queue",
    html`<p>${stats.messages} messages, ${stats.queued} recipients queued (${stats.deferred} deferred, ${stats.active} being delivered)${
      stats.oldestCreatedAt ? `, oldest ${age(stats.oldestCreatedAt)} old` : ""
    }.</p>
<form method="get" action="/queue">
<input type="text" name="q" value="${filters.text}" placeholder="queue ID, sender, recipient or domain" size="36">
<select name="state"><option value="">any state</option>${["deferred", "due", "held"].map(
      (state) => html`<option value="${state}"${filters.state === state ? raw(" selected") : ""}>${state}</option>`,
    )}</select> <button type="submit">Filter</button></form>
<table><tr><th>Queue ID</th><th>Sender</th><th>Recipients</th><th class="num">Attempts</th><th>Next attempt</th><th>Last reply</th><th>Age</th></tr>
${messages.map((message) => {
  const queued = message.recipients.filter((recipient) => recipient.state === "queued" || recipient.state === "held");
  const last = queued.find((recipient) => recipient.lastReply)?.lastReply;
  const next = Math.min(...queued.map((recipient) => recipient.nextAttemptAt));
  return html`<tr><td class="mono"><a href="/queue/${message.id}">${message.id}</a></td><td>${message.from || "<>"}</td>
<td>${queued.map((recipient) => recipient.address).join(", ")}${queued.some((recipient) => recipient.state === "held") ? raw(' <span class="warn">on hold</span>') : ""}</td>
<td class="num">${Math.max(0, ...queued.map((recipient) => recipient.attempts))}</td>
<td>${Number.isFinite(next) ? when(next) : ""}</td><td class="mono">${last ? `${last.code} ${last.status} ${last.text}` : ""}</td>
<td>${age(message.createdAt)}</td></tr>`;
})}</table>${messages.length === 0 ? html`<p class="muted">Nothing queued matches.</p>` : ""}`,
    flash,
  );
}

export function queueShowPage(message: QueuedMessage, csrf: string, flash?: string): Html {
  return layout(
    `Queued message ${message.id}`,
    "/queue",
    html`<dl><dt>Sender</dt><dd>${message.from || "<> (null sender)"}</dd>
<dt>Received</dt><dd>${when(message.createdAt)} (${age(message.createdAt)} ago)</dd>
<dt>Size</dt><dd>${message.size} bytes</dd><dt>Kind</dt><dd>${message.kind}${message.requireTls ? ", REQUIRETLS" : ""}${
      message.smtpUtf8 ? ", SMTPUTF8" : ""
    }</dd></dl>
<p>${postButton(`/queue/${message.id}/retry`, "Retry now", csrf)} ${
      message.recipients.some((recipient) => recipient.state === "held")
        ? postButton(`/queue/${message.id}/release`, "Release", csrf)
        : postButton(`/queue/${message.id}/hold`, "Hold", csrf)
    } ${postButton(`/queue/${message.id}/delete`, "Delete", csrf, { danger: true })}
 <a href="/transactions/${message.id}">How it was received</a></p>
<table><tr><th>Recipient</th><th>State</th><th class="num">Attempts</th><th>Next attempt</th><th>Last reply</th></tr>
${message.recipients.map(
  (
    recipient,
  ) => html`<tr><td>${recipient.address}</td><td>${recipient.state}</td><td class="num">${recipient.attempts}</td>
<td>${recipient.state === "queued" ? when(recipient.nextAttemptAt) : ""}</td>
<td class="mono">${recipient.lastReply ? `${recipient.lastReply.code} ${recipient.lastReply.status} ${recipient.lastReply.text}${recipient.lastReply.remote ? ` (${recipient.lastReply.remote})` : ""}` : ""}</td></tr>`,
)}</table>`,
    flash,
  );
}

export function transactionsPage(records: readonly StoredRecord[], filters: { text: string; outcome: string }): Html {
  return layout(
    "Recent transactions",
    "/transactions",
    html`<form method="get" action="/transactions">
<input type="text" name="q" value="${filters.text}" placeholder="queue ID, client, sender or recipient" size="36">
<select name="outcome"><option value="">any outcome</option>${["queued", "refused", "discarded", "abandoned"].map(
      (outcome) =>
        html`<option value="${outcome}"${filters.outcome === outcome ? raw(" selected") : ""}>${outcome}</option>`,
    )}</select> <button type="submit">Filter</button></form>
<table><tr><th>Ended</th><th>Queue ID</th><th>Outcome</th><th>Client</th><th>Sender</th><th>Recipients</th><th class="num">Size</th><th>Reply</th></tr>
${records.map(
  (
    record,
  ) => html`<tr><td>${when(record.endedAt)}</td><td class="mono"><a href="/transactions/${record.queueId}">${record.queueId}</a></td>
<td class="${outcomeClass(record.outcome)}">${record.outcome}</td><td class="mono">${record.client.address}</td><td>${record.from || "<>"}</td>
<td>${record.recipients.map(
    (recipient) => html`<span class="${recipient.outcome === "accepted" ? "" : "bad"}">${recipient.address}</span> `,
  )}</td><td class="num">${record.size ?? ""}</td><td class="mono">${record.reply ?? ""}</td></tr>`,
)}</table>${records.length === 0 ? html`<p class="muted">No transaction matches yet.</p>` : ""}`,
  );
}

function trailRow(step: TrailStep): Html {
  return html`<tr><td class="num">${ms(step.atMs)}</td><td>${step.set === "smtp" ? "" : `${step.set}.`}${step.hook}</td><td>${step.plugin}</td>
<td class="${verdictClass(step.verdict)}">${step.verdict === "-" ? "no answer" : step.verdict}</td><td class="mono">${step.reply ?? step.error ?? ""}</td>
<td class="num">${ms(step.durationMs)}</td></tr>`;
}

export function transactionPage(record: StoredRecord, inQueue: boolean): Html {
  return layout(
    `Transaction ${record.queueId}`,
    "/transactions",
    html`<dl>
<dt>Outcome</dt><dd class="${outcomeClass(record.outcome)}">${record.outcome}${record.reason ? ` (${record.reason})` : ""}</dd>
<dt>Final reply</dt><dd class="mono">${record.reply ?? "none (ended before DATA's reply)"}</dd>
<dt>Client</dt><dd class="mono">${record.client.address}:${record.client.port}${record.client.hostname ? ` (${record.client.hostname})` : ""}</dd>
<dt>HELO</dt><dd>${record.helo ?? ""}</dd><dt>Listener</dt><dd>${record.listener} on node ${record.node}</dd>
<dt>TLS</dt><dd>${record.tls ? `${record.tls.protocol} ${record.tls.cipher}` : "none"}</dd>
<dt>AUTH</dt><dd>${record.user ?? "none"}</dd><dt>Sender</dt><dd>${record.from || "<>"}</dd>
<dt>Size</dt><dd>${record.size === undefined ? "" : `${record.size} bytes`}</dd>
<dt>Times</dt><dd>${when(record.startedAt)} → ${when(record.endedAt)}: ${ms(record.delays.transactionMs)} ms in the transaction, ${ms(record.delays.sessionMs)} ms in the session before it</dd>
</dl>${inQueue ? html`<p><a href="/queue/${record.queueId}">In the outbound queue</a></p>` : ""}
<h2>Recipients</h2>
<table><tr><th>Recipient</th><th>Given as</th><th>Outcome</th><th>Route</th><th>Reply</th></tr>
${record.recipients.map(
  (
    recipient,
  ) => html`<tr><td>${recipient.address}</td><td>${recipient.original === recipient.address ? "" : recipient.original}</td>
<td class="${recipient.outcome === "accepted" ? "ok" : "bad"}">${recipient.outcome}</td><td>${recipient.route ?? ""}</td><td class="mono">${recipient.reply ?? ""}</td></tr>`,
)}</table>
<h2>Trail</h2>
<p class="muted">Every hook call in order: the session's (connect, HELO, AUTH) first, then the transaction's.</p>
<table><tr><th class="num">At (ms)</th><th>Hook</th><th>Plugin</th><th>Answer</th><th>Reply or error</th><th class="num">Took (ms)</th></tr>
${record.trail.map(trailRow)}</table>`,
  );
}

export interface MailboxRow {
  readonly id: string;
  readonly receivedAt: Date;
  readonly from: string | null;
  readonly subject: string | null;
  readonly size: number;
  readonly queueId: string;
}

export function mailboxesPage(available: boolean, mailbox: string, rows: readonly MailboxRow[], error?: string): Html {
  return layout(
    "Mailboxes",
    "/mailboxes",
    available
      ? html`<form method="get" action="/mailboxes"><input type="text" name="mailbox" value="${mailbox}" placeholder="alice@example.com" size="36"> <button type="submit">Show</button></form>
${error ? html`<p class="bad">${error}</p>` : ""}${
  mailbox
    ? html`<table><tr><th>Received</th><th>From</th><th>Subject</th><th class="num">Size</th><th>Queue ID</th></tr>${rows.map(
        (
          row,
        ) => html`<tr><td>${row.receivedAt.toISOString()}</td><td>${row.from ?? ""}</td><td>${row.subject ?? ""}</td>
<td class="num">${row.size}</td><td class="mono"><a href="/transactions/${row.queueId}">${row.queueId}</a></td></tr>`,
      )}</table>${rows.length === 0 ? html`<p class="muted">No message in ${mailbox}.</p>` : ""}`
    : ""
}`
      : html`<p class="muted">No @postern/store-postgres plugin is configured.</p>`,
  );
}

export interface CounterRow {
  readonly limit: string;
  readonly key: string;
  readonly count: number;
  readonly expiresInMs: number | undefined;
}

export function rateLimitsPage(
  available: boolean,
  query: string,
  rows: readonly CounterRow[],
  csrf: string,
  message?: string,
): Html {
  return layout(
    "Rate limits",
    "/rate-limits",
    available
      ? html`<form method="get" action="/rate-limits"><input type="text" name="query" value="${query}" placeholder="ip=192.0.2.1 or user=alice" size="36"> <button type="submit">Show</button></form>
${message ? html`<p class="flash">${message}</p>` : ""}${
  query
    ? html`<table><tr><th>Limit</th><th>Key</th><th class="num">Count</th><th>Window ends in</th></tr>${rows.map(
        (row) => html`<tr><td>${row.limit}</td><td class="mono">${row.key}</td><td class="num">${row.count}</td>
<td>${row.expiresInMs === undefined ? "" : `${Math.round(row.expiresInMs / 1000)} s`}</td></tr>`,
      )}</table>${rows.length > 0 ? postButton(`/rate-limits/reset?query=${encodeURIComponent(query)}`, "Reset these counters", csrf, { danger: true }) : html`<p class="muted">No counter matches.</p>`}`
    : ""
}`
      : html`<p class="muted">No @postern/rate-limit plugin with Redis counters is configured.</p>`,
  );
}

export function loginPage(csrf: string, failed: boolean): Html {
  return layout(
    "Sign in",
    "",
    html`${failed ? html`<p class="bad">That token is not the one in the token file.</p>` : ""}
<form method="post" action="/login"><input type="hidden" name="${csrfField}" value="${csrf}">
<label>Admin token <input type="password" name="token" size="40" autofocus></label> <button type="submit">Sign in</button></form>`,
  );
}
