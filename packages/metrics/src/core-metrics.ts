// Core's observer events as Prometheus metrics: sessions, transactions, replies by code class, every
// hook call by set, hook, plugin and verdict with its latency, TLS versions, AUTH outcomes, bytes
// received, spool refusals and store failures. The metric objects outlive a configuration reload
// (the endpoint keeps them), so counters do not restart when plugins do.
import {
  authAttempted,
  commandRefused,
  type EventChannel,
  type HookCompletedEvent,
  hookCompleted,
  sessionClosed,
  sessionOpened,
  spoolRefused,
  tlsEstablished,
  transactionEnded,
} from "@postern/core";
import { Counter, Gauge, Histogram, type LabelValues, type Registry } from "prom-client";

/** Latency buckets for one hook call: most answer in microseconds, DNS and storage in milliseconds. */
const hookBuckets = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const sizeBuckets = [1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216, 52_428_800];
const durationBuckets = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

/** "accept", "reject" … for a verdict; the decision type for outbound's route; "none", "error", "timeout". */
function verdictOf(event: HookCompletedEvent): string {
  if (event.error) return event.error.code === "POSTERN_HOOK_TIMEOUT" ? "timeout" : "error";
  const answer = event.answer as { kind?: unknown; type?: unknown } | undefined | null;
  if (answer === undefined || answer === null || typeof answer !== "object") return "none";
  if (typeof answer.kind === "string") return answer.kind;
  if (typeof answer.type === "string") return answer.type;
  return "answered";
}

const codeClass = (code: number) => `${Math.floor(code / 100)}xx`;

interface HookChildren {
  readonly duration: ReturnType<Histogram<"set" | "hook" | "plugin">["labels"]>;
  readonly calls: Map<string, ReturnType<Counter<"set" | "hook" | "plugin" | "verdict">["labels"]>>;
}

export class CoreMetrics {
  readonly sessions: Counter<"listener">;
  readonly activeSessions: Gauge<"listener">;
  readonly sessionDuration: Histogram;
  readonly transactions: Counter<"outcome">;
  readonly transactionDuration: Histogram<"outcome">;
  readonly replies: Counter<"stage" | "class">;
  readonly hookCalls: Counter<"set" | "hook" | "plugin" | "verdict">;
  readonly hookDuration: Histogram<"set" | "hook" | "plugin">;
  readonly tls: Counter<"protocol">;
  readonly auth: Counter<"method" | "outcome">;
  readonly receivedBytes: Counter;
  readonly messageSize: Histogram;
  readonly spoolRefused: Counter<"problem">;
  readonly storeFailures: Counter<"plugin" | "kind">;
  /** prom-client's label lookup hashes the labels on every call; hook calls are the hot path. */
  readonly #hookChildren = new Map<string, HookChildren>();

  constructor(registry: Registry, prefix: string) {
    const registers = [registry];
    const p = prefix;
    this.sessions = new Counter({
      name: `${p}sessions_total`,
      help: "SMTP sessions accepted, by listener",
      labelNames: ["listener"] as const,
      registers,
    });
    this.activeSessions = new Gauge({
      name: `${p}sessions_active`,
      help: "SMTP sessions open now, by listener",
      labelNames: ["listener"] as const,
      registers,
    });
    this.sessionDuration = new Histogram({
      name: `${p}session_duration_seconds`,
      help: "How long SMTP sessions lasted",
      buckets: durationBuckets,
      registers,
    });
    this.transactions = new Counter({
      name: `${p}transactions_total`,
      help: "Mail transactions ended, by outcome (queued, discarded, refused, abandoned)",
      labelNames: ["outcome"] as const,
      registers,
    });
    this.transactionDuration = new Histogram({
      name: `${p}transaction_duration_seconds`,
      help: "MAIL FROM to the end of the transaction, by outcome",
      labelNames: ["outcome"] as const,
      buckets: durationBuckets,
      registers,
    });
    this.replies = new Counter({
      name: `${p}smtp_replies_total`,
      help: "Replies core sent by stage and code class: every refusal, and the 2xx to DATA (accepted commands before DATA are not counted)",
      labelNames: ["stage", "class"] as const,
      registers,
    });
    this.hookCalls = new Counter({
      name: `${p}hook_calls_total`,
      help: "Hook handler calls by hook set, hook, plugin and verdict (none = let the next plugin decide)",
      labelNames: ["set", "hook", "plugin", "verdict"] as const,
      registers,
    });
    this.hookDuration = new Histogram({
      name: `${p}hook_duration_seconds`,
      help: "Time of one hook handler call, by hook set, hook and plugin",
      labelNames: ["set", "hook", "plugin"] as const,
      buckets: hookBuckets,
      registers,
    });
    this.tls = new Counter({
      name: `${p}tls_sessions_total`,
      help: "TLS handshakes completed (implicit TLS and STARTTLS), by protocol version",
      labelNames: ["protocol"] as const,
      registers,
    });
    this.auth = new Counter({
      name: `${p}auth_attempts_total`,
      help: "AUTH attempts by mechanism and outcome",
      labelNames: ["method", "outcome"] as const,
      registers,
    });
    this.receivedBytes = new Counter({
      name: `${p}received_bytes_total`,
      help: "Message bytes received through DATA (spooled)",
      registers,
    });
    this.messageSize = new Histogram({
      name: `${p}message_size_bytes`,
      help: "Size of the messages received through DATA",
      buckets: sizeBuckets,
      registers,
    });
    this.spoolRefused = new Counter({
      name: `${p}spool_refused_total`,
      help: "Messages refused while spooling, by problem (size, bare-newline, line-length, nul)",
      labelNames: ["problem"] as const,
      registers,
    });
    this.storeFailures = new Counter({
      name: `${p}store_failures_total`,
      help: "queue hook calls that did not store a message, by plugin and kind (error, timeout, refused)",
      labelNames: ["plugin", "kind"] as const,
      registers,
    });
  }

  #children(event: HookCompletedEvent): HookChildren {
    const key = `${event.set}\u0000${event.hook}\u0000${event.plugin}`;
    let children = this.#hookChildren.get(key);
    if (!children) {
      const labels: LabelValues<"set" | "hook" | "plugin"> = { set: event.set, hook: event.hook, plugin: event.plugin };
      children = { duration: this.hookDuration.labels(labels), calls: new Map() };
      this.#hookChildren.set(key, children);
    }
    return children;
  }

  #hook(event: HookCompletedEvent): void {
    const children = this.#children(event);
    const verdict = verdictOf(event);
    let calls = children.calls.get(verdict);
    if (!calls) {
      calls = this.hookCalls.labels({ set: event.set, hook: event.hook, plugin: event.plugin, verdict });
      children.calls.set(verdict, calls);
    }
    calls.inc();
    children.duration.observe(event.durationMs / 1000);
    if (event.set === "smtp" && event.hook === "queue" && verdict !== "accept" && verdict !== "none") {
      const kind = verdict === "error" || verdict === "timeout" ? verdict : "refused";
      this.storeFailures.inc({ plugin: event.plugin, kind });
    }
  }

  /** Subscribes to a generation's channel; returns the function that unsubscribes. */
  observe(events: EventChannel): () => void {
    const off = [
      events.on(hookCompleted, (event) => this.#hook(event)),
      events.on(sessionOpened, ({ session }) => {
        this.sessions.inc({ listener: session.listener.name });
        this.activeSessions.inc({ listener: session.listener.name });
      }),
      events.on(sessionClosed, ({ session, durationMs }) => {
        this.activeSessions.dec({ listener: session.listener.name });
        this.sessionDuration.observe(durationMs / 1000);
      }),
      events.on(tlsEstablished, ({ tls }) => this.tls.inc({ protocol: tls.protocol })),
      events.on(authAttempted, ({ method, outcome }) => this.auth.inc({ method, outcome })),
      events.on(commandRefused, ({ stage, reply }) => this.replies.inc({ stage, class: codeClass(reply.code) })),
      events.on(spoolRefused, ({ problem }) => this.spoolRefused.inc({ problem })),
      events.on(transactionEnded, (event) => {
        this.transactions.inc({ outcome: event.outcome });
        this.transactionDuration.observe({ outcome: event.outcome }, event.durationMs / 1000);
        if (event.size !== undefined) {
          this.receivedBytes.inc(event.size);
          this.messageSize.observe(event.size);
        }
        // Refusals were counted as commandRefused; here the 2xx to DATA.
        if (event.reply && event.reply.code < 300) this.replies.inc({ stage: "data", class: "2xx" });
      }),
    ];
    return () => {
      for (const unsubscribe of off) unsubscribe();
    };
  }
}
