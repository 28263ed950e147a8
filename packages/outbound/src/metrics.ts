// Prometheus metrics on prom-client, in a registry the app can expose (or the app's own registry
// passed as an option). Queue size and age are read from the store when scraped, so every node
// sharing a PostgreSQL queue reports the same, cluster-wide figures for those two.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { QueueStats, QueueStore } from "./queue/store.ts";

export class OutboundMetrics {
  readonly registry: Registry;
  readonly queued: Counter;
  readonly delivered: Counter;
  readonly deferred: Counter;
  readonly bounced: Counter;
  readonly domainFailures: Counter<"domain" | "outcome">;
  readonly connections: Counter<"reused">;
  readonly throttled: Counter<"rule" | "limit">;
  readonly deliveryDuration: Histogram;
  #store: QueueStore | undefined;

  constructor(options: { registry?: Registry | undefined; prefix: string }) {
    this.registry = options.registry ?? new Registry();
    const p = options.prefix;
    const registers = [this.registry];
    this.queued = new Counter({ name: `${p}queued_total`, help: "Recipients queued for delivery", registers });
    this.delivered = new Counter({
      name: `${p}delivered_total`,
      help: "Recipients delivered to the next hop",
      registers,
    });
    this.deferred = new Counter({
      name: `${p}deferred_total`,
      help: "Delivery attempts that failed temporarily (per recipient)",
      registers,
    });
    this.bounced = new Counter({
      name: `${p}bounced_total`,
      help: "Recipients that failed permanently or expired",
      registers,
    });
    this.domainFailures = new Counter({
      name: `${p}domain_failures_total`,
      help: "Failed recipient attempts per recipient domain",
      labelNames: ["domain", "outcome"] as const,
      registers,
    });
    this.connections = new Counter({
      name: `${p}connections_total`,
      help: "Delivery sessions by whether they reused an open connection",
      labelNames: ["reused"] as const,
      registers,
    });
    this.throttled = new Counter({
      name: `${p}throttled_total`,
      help: "Recipients held back by a throttle (not attempts), by rule and limit (messages, connections)",
      labelNames: ["rule", "limit"] as const,
      registers,
    });
    this.deliveryDuration = new Histogram({
      name: `${p}delivery_duration_seconds`,
      help: "Time of one delivery attempt (one message to one domain)",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    const metrics = this;
    new Gauge({
      name: `${p}queue_recipients`,
      help: "Recipients in the queue, by state (queued = waiting, deferred = failed before, active = being delivered, held = on hold)",
      labelNames: ["state"] as const,
      registers,
      async collect() {
        const stats = await metrics.#stats();
        if (!stats) return;
        this.set({ state: "queued" }, stats.queued);
        this.set({ state: "deferred" }, stats.deferred);
        this.set({ state: "active" }, stats.active);
        this.set({ state: "held" }, stats.held);
      },
    });
    new Gauge({
      name: `${p}queue_messages`,
      help: "Messages in the queue",
      registers,
      async collect() {
        const stats = await metrics.#stats();
        if (stats) this.set(stats.messages);
      },
    });
    new Gauge({
      name: `${p}queue_oldest_age_seconds`,
      help: "Age of the oldest message in the queue (0 when empty)",
      registers,
      async collect() {
        const stats = await metrics.#stats();
        if (!stats) return;
        this.set(stats.oldestCreatedAt === undefined ? 0 : (Date.now() - stats.oldestCreatedAt) / 1000);
      },
    });
  }

  #cached: { at: number; stats: Promise<QueueStats | undefined> } | undefined;

  /** One stats() query serves all gauges of one scrape. */
  #stats(): Promise<QueueStats | undefined> {
    const now = Date.now();
    if (this.#cached && now - this.#cached.at < 1000) return this.#cached.stats;
    const stats = this.#store ? this.#store.stats().catch(() => undefined) : Promise.resolve(undefined);
    this.#cached = { at: now, stats };
    return stats;
  }

  /** The store the queue gauges read when scraped. */
  attach(store: QueueStore): void {
    this.#store = store;
  }
}
