// @postern/outbound — the public face: the plugin factory, the queue stores, the delivery hooks.
import type { Readable } from "node:stream";
import { getCACertificates, rootCertificates } from "node:tls";
import { accept, defer, type Plugin, parseOptions, type Recipient, transactionEnded } from "@postern/core";
import type { Registry } from "prom-client";
import { ConnectionPool } from "./connection-pool.ts";
import { DanePolicies } from "./dane.ts";
import { Deliverer } from "./delivery.ts";
import { outboundHooks } from "./delivery-hooks.ts";
import { ValidatingResolver } from "./dnssec-resolver.ts";
import { has8bit } from "./dsn.ts";
import { OutboundMetrics } from "./metrics.ts";
import { MtaStsPolicies } from "./mta-sts.ts";
import { type OutboundOptions, outboundOptionsSchema, type ResolvedOutboundOptions } from "./options.ts";
import { ownAddressTest } from "./own-address.ts";
import { FsQueueStore } from "./queue/fs-store.ts";
import { PgQueueStore } from "./queue/pg-store.ts";
import type { MessageEnvelope, QueueStore } from "./queue/store.ts";
import { Router } from "./routing.ts";
import { DeliveryRunner, wantsReport } from "./runner.ts";
import { signMessage } from "./signer.ts";
import { SourcePools } from "./sources.ts";
import { Throttle } from "./throttle.ts";
import { TlsOutcomes } from "./tls-outcome.ts";

export type {
  BouncedEvent,
  DeferredEvent,
  DeliveryEvent,
  OutboundDeliveryEvent,
  OutboundHookHandlers,
  OutboundHooks,
  RouteContext,
  RouteDecision,
  TlsFailureType,
  TlsOutcome,
  TlsPolicy,
  TlsPolicyType,
} from "./delivery-hooks.ts";
export { outboundDelivery, outboundHooks, outboundTls } from "./delivery-hooks.ts";
export type {
  OutboundOptions,
  RelayTarget,
  RelayTargetInput,
  SourcePoolInput,
  ThrottleRuleInput,
  TlsLevel,
} from "./options.ts";
export { outboundOptionsSchema } from "./options.ts";
export type { FsQueueStoreOptions } from "./queue/fs-store.ts";
export { FsQueueStore, SpoolLockedError } from "./queue/fs-store.ts";
export type { PgQueueStoreOptions } from "./queue/pg-store.ts";
export { PgQueueStore } from "./queue/pg-store.ts";
export type {
  Claim,
  ClaimOptions,
  DeliveryReply,
  MessageEnvelope,
  NewRecipient,
  QueuedMessage,
  QueueStats,
  QueueStore,
  RecipientOutcome,
  RecipientRecord,
  RecipientState,
  ReleaseOptions,
} from "./queue/store.ts";
export type { RetryPolicy } from "./runner.ts";
export { retryDelay } from "./runner.ts";
export type { MessageSigner, SignerEnvelope } from "./signer.ts";

export interface OutboundPlugin extends Plugin {
  readonly name: "@postern/outbound";
  /** The queue store (opened in setup). */
  readonly store: QueueStore;
  /** prom-client registry with the outbound metrics; expose it with `await registry.metrics()`. */
  readonly metrics: Registry;
  /** Makes the worker look at the queue now instead of at its next poll. */
  flush(): void;
  /**
   * A new, unopened store on the same queue for operator tools (`postern queue`). A filesystem
   * spool is opened shared: while a server owns it, reads work and retry/delete are handed to the
   * server. The caller opens and closes it.
   */
  adminStore(): QueueStore;
  /** Resolves while the queue store can take mail (what /readyz of @postern/metrics asks). */
  ready(): Promise<void>;
}

/** Opens the store an options object describes, e.g. for `postern queue`. */
export function createQueueStore(
  queue: ResolvedOutboundOptions["queue"],
  options: { shared?: boolean } = {},
): QueueStore {
  switch (queue.type) {
    case "fs":
      return new FsQueueStore({ dir: queue.dir, shared: options.shared ?? false });
    case "postgres":
      return new PgQueueStore({
        connectionString: queue.connectionString,
        schema: queue.schema,
        maxConnections: queue.maxConnections,
        chunkSize: queue.chunkSize,
      });
    case "custom":
      return queue.store;
  }
}

function trustedCas(extra: string | string[] | undefined): string[] | undefined {
  if (!extra) return undefined;
  // `ca` replaces Node's trust store for a connection; keep the default CAs next to the extra ones.
  const defaults = typeof getCACertificates === "function" ? getCACertificates("default") : [...rootCertificates];
  return [...defaults, ...(Array.isArray(extra) ? extra : [extra])];
}

/** RFC 3461 §4.2: the client's ORCPT, else for an expanded recipient the address the client gave. */
/** A small message's bytes as one Buffer. */
async function gather(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

function orcptOf(recipient: Recipient): string | undefined {
  if (recipient.dsn?.orcpt) return recipient.dsn.orcpt;
  if (recipient.original === recipient.address) return undefined;
  return `${has8bit(recipient.original) ? "utf-8" : "rfc822"};${recipient.original}`;
}

export default function outbound(input: OutboundOptions = {}): OutboundPlugin {
  const options = parseOptions(outboundOptionsSchema, input, "@postern/outbound");
  const store = createQueueStore(options.queue);
  const bodyBufferLimit = store.bodyBufferLimit ?? 0;
  const metrics = new OutboundMetrics(options.metrics);
  metrics.attach(store);
  let runner: DeliveryRunner | undefined;
  let pool: ConnectionPool | undefined;
  let throttle: Throttle | undefined;

  const plugin: OutboundPlugin = {
    name: "@postern/outbound",
    // Outbound runs the delivery hooks; the operator's `hooks` option is its own first handler.
    defines: [outboundHooks],
    handles: options.hooks ? [outboundHooks.handlers(options.hooks)] : [],
    store,
    metrics: metrics.registry,

    flush() {
      runner?.wake();
    },

    adminStore() {
      return createQueueStore(options.queue, { shared: true });
    },

    ready() {
      return store.ready();
    },

    async setup(context) {
      await store.open();
      const log = context.logger.child({ plugin: "@postern/outbound" });
      const hooks = context.runner(outboundHooks);
      const tlsOutcomes = new TlsOutcomes(context.events);
      const mtaSts = options.mtaSts.enabled
        ? new MtaStsPolicies({
            resolver: context.resolver,
            store,
            log,
            timeoutMs: options.mtaSts.timeoutMs,
            recheckMs: options.mtaSts.recheckMs,
            tlsOutcomes,
          })
        : undefined;
      const dane = options.dane.resolver
        ? new DanePolicies(
            new ValidatingResolver({ server: options.dane.resolver, timeoutMs: options.dane.timeoutMs }),
            tlsOutcomes,
          )
        : undefined;
      const router = new Router({
        options,
        resolver: context.resolver,
        hooks,
        mtaSts,
        dane,
        log,
        isOwnAddress: ownAddressTest(context.listening),
      });
      throttle =
        options.throttle.length > 0 ? new Throttle({ rules: options.throttle, redis: options.redis, log }) : undefined;
      await throttle?.open();
      pool = new ConnectionPool({
        slots: throttle,
        slotWaitMs: options.connections.slotWaitMs,
        reuse: options.connections.reuse,
        maxMessages: options.connections.maxMessages,
        idleTimeoutMs: options.connections.idleTimeoutMs,
        settings: {
          heloName: options.heloName ?? context.hostname,
          ca: trustedCas(options.tls.ca),
          connectTimeoutMs: options.connections.connectTimeoutMs,
          greetingTimeoutMs: options.connections.greetingTimeoutMs,
          socketTimeoutMs: options.connections.socketTimeoutMs,
        },
      });
      const deliverer = new Deliverer({
        router,
        pool,
        metrics,
        log,
        maxRecipientsPerTransaction: options.maxRecipientsPerTransaction,
        tlsOutcomes,
        mtaSts,
        dane,
        throttle,
        sources: options.sources.length > 0 ? new SourcePools(options.sources) : undefined,
      });
      runner = new DeliveryRunner({
        store,
        deliverer,
        options,
        hooks,
        events: context.events,
        metrics,
        log,
        hostname: context.hostname,
        signer: options.signer,
        submit: context.submit,
      });
      if (options.worker.enabled) runner.start();
      const deliveredRoutes = new Set(options.dsn.deliveredRoutes);
      const reporter = runner;
      // RFC 3461 §5.2.3 "delivered": a NOTIFY=SUCCESS recipient stored in a mailbox here. The store
      // said yes before this event, so the report cannot hold the message up.
      context.events.on(transactionEnded, async (event) => {
        if (event.outcome !== "queued" || event.transaction.mailFrom.address === "") return;
        const entries = event.groups
          .filter((group) => deliveredRoutes.has(group.route))
          .flatMap((group) => group.recipients)
          .filter((recipient) => wantsReport(recipient.dsn?.notify, "SUCCESS") && recipient.dsn?.notify?.length)
          .map((recipient) => ({
            recipient: { address: recipient.address, orcpt: orcptOf(recipient) },
            reply: { code: 250, status: "2.0.0", text: `delivered to the mailbox (route ${recipient.route})` },
            action: "delivered" as const,
          }));
        if (entries.length === 0) return;
        const { transaction } = event;
        await reporter
          .sendReport(
            {
              id: transaction.id,
              from: transaction.mailFrom.address,
              createdAt: Date.now(),
              size: event.size ?? 0,
              requireTls: transaction.requireTls,
              smtpUtf8: transaction.smtpUtf8,
              bodyType: transaction.bodyType.toLowerCase(),
              dsn: transaction.dsn ? { ret: transaction.dsn.ret, envid: transaction.dsn.envid } : undefined,
              kind: "relay",
            },
            entries,
            Date.now(),
          )
          .catch((error: Error) =>
            log.error({ err: error.message, queueId: transaction.id }, "delivered report not stored"),
          );
      });
      log.info(
        {
          store: store.kind,
          worker: options.worker.enabled ? runner.worker : false,
          ...(throttle ? { throttles: options.throttle.length, throttleCounters: throttle.kind } : {}),
          ...(options.sources.length > 0 ? { sourcePools: options.sources.length } : {}),
        },
        "outbound queue ready",
      );
    },

    async close() {
      await runner?.stop();
      pool?.closeAll();
      await throttle?.close();
      await store.close();
    },

    hooks: {
      async queue(transaction, message, group, context) {
        if (!options.queueRoutes.includes(group.route)) return undefined;
        // One transaction may carry several of our routes; each is its own queued message.
        const groupId =
          group.route === options.queueRoutes[0]
            ? transaction.id
            : `${transaction.id}.${group.route.replace(/[^A-Za-z0-9_-]/g, "-")}`;
        // Recipients forwarded under another envelope sender (SRS) are their own queued message.
        const bySender = new Map<string, typeof group.recipients>();
        for (const recipient of group.recipients) {
          const sender = recipient.sender ?? transaction.mailFrom.address;
          bySender.set(sender, [...(bySender.get(sender) ?? []), recipient]);
        }
        let queuedCount = 0;
        /** The message's bytes, read once for every part (signed or small messages only). */
        let gathered: Buffer | undefined;
        try {
          let part = 0;
          for (const [from, members] of bySender) {
            const id = part === 0 ? groupId : `${groupId}.${part}`;
            part++;
            const recipients = members.map((recipient) => ({
              address: recipient.address,
              notify: recipient.dsn?.notify,
              // RFC 3461 §4.2: an expanded recipient's reports name the address the client gave.
              orcpt: orcptOf(recipient),
            }));
            let body: Buffer | Readable;
            let size = message.size;
            if (options.signer) {
              gathered ??= await gather(message.stream());
              body = await signMessage(options.signer, gathered, {
                id,
                from,
                recipients: recipients.map((recipient) => recipient.address),
              });
              size = body.length;
            } else if (size <= bodyBufferLimit) {
              // Small enough to hold whole (core already does, below its spool threshold): the
              // store's one-statement / one-write path. Larger messages stream, never held whole.
              gathered ??= await gather(message.stream());
              body = gathered;
            } else {
              body = message.stream();
            }
            const envelope: MessageEnvelope = {
              id,
              from,
              createdAt: Date.now(),
              size,
              requireTls: transaction.requireTls,
              smtpUtf8: transaction.smtpUtf8,
              bodyType: transaction.bodyType.toLowerCase(),
              dsn: transaction.dsn ? { ret: transaction.dsn.ret, envid: transaction.dsn.envid } : undefined,
              kind: "relay",
            };
            await store.enqueue(envelope, recipients, body);
            queuedCount += recipients.length;
          }
        } catch (error) {
          context.log.error({ err: error }, "message not queued for delivery");
          return defer("4.3.0", "Message not queued for delivery, try again later");
        }
        metrics.queued.inc(queuedCount);
        runner?.wake();
        return accept();
      },
    },
  };
  return plugin satisfies Plugin;
}
