// Shared setup for delivery tests: a real Postern server (core + test kit) with the outbound
// plugin, a fake DNS zone, a temporary spool, and a recorder of the outbound hooks.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Plugin } from "@postern/core";
import { claimRecipients, type FakeDns, startTestServer, type TestServer } from "@postern/testing";
import type { BouncedEvent, DeferredEvent, DeliveryEvent, OutboundHookHandlers } from "../delivery-hooks.ts";
import outbound, { type OutboundOptions, type OutboundPlugin } from "../index.ts";

type EventMap = { delivered: DeliveryEvent; deferred: DeferredEvent; bounced: BouncedEvent };
export type EventName = keyof EventMap;

export interface Recorder {
  readonly hooks: OutboundHookHandlers;
  readonly events: { name: EventName; event: DeliveryEvent }[];
  /** The first event (past or future) of that kind matching `match`. */
  wait<Name extends EventName>(
    name: Name,
    match?: (event: EventMap[Name]) => boolean,
    timeoutMs?: number,
  ): Promise<EventMap[Name]>;
  count(name: EventName): number;
}

export function recorder(): Recorder {
  const events: { name: EventName; event: DeliveryEvent }[] = [];
  const waiters: { name: EventName; match: (event: never) => boolean; resolve: (event: never) => void }[] = [];
  const push = (name: EventName, event: DeliveryEvent) => {
    events.push({ name, event });
    for (const waiter of [...waiters]) {
      if (waiter.name === name && waiter.match(event as never)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(event as never);
      }
    }
  };
  return {
    events,
    hooks: {
      delivered: (event: DeliveryEvent) => push("delivered", event),
      deferred: (event: DeferredEvent) => push("deferred", event),
      bounced: (event: BouncedEvent) => push("bounced", event),
    },
    wait(name, match = () => true, timeoutMs = 15_000) {
      const found = events.find((entry) => entry.name === name && match(entry.event as never));
      if (found) return Promise.resolve(found.event as never);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no ${name} event within ${timeoutMs} ms; saw ${JSON.stringify(events.map((entry) => [entry.name, entry.event.recipient.address, entry.event.reply.text]))}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({
          name,
          match: match as (event: never) => boolean,
          resolve: (event: never) => {
            clearTimeout(timer);
            resolve(event);
          },
        });
      });
    },
    count(name) {
      return events.filter((entry) => entry.name === name).length;
    },
  };
}

export interface OutboundHarness {
  server: TestServer;
  plugin: OutboundPlugin;
  events: Recorder;
  spool: string;
  stop(): Promise<void>;
}

/** Fast retries for tests; everything else as in production unless overridden. */
export const quickRetry = { initialDelayMs: 200, maxDelayMs: 1_000, factor: 2, jitter: 0 };

export async function startOutbound(
  dns: FakeDns,
  options: OutboundOptions & { port: number },
  extra: { plugins?: Plugin[]; config?: Parameters<typeof startTestServer>[0]["config"] } = {},
): Promise<OutboundHarness> {
  const spool = await mkdtemp(join(tmpdir(), "postern-outbound-test-"));
  const events = recorder();
  const plugin = outbound({
    queue: { type: "fs", dir: spool },
    retry: quickRetry,
    ...options,
    worker: { pollIntervalMs: 100, ...options.worker },
    hooks: { ...events.hooks, ...options.hooks },
  });
  const server = await startTestServer({
    plugins: [claimRecipients({ route: "relay" }), ...(extra.plugins ?? []), plugin],
    dns,
    hostname: "mta.postern.test",
    ...(extra.config ? { config: extra.config } : {}),
  });
  return {
    server,
    plugin,
    events,
    spool,
    async stop() {
      await server.stop();
      await rm(spool, { recursive: true, force: true });
    },
  };
}
