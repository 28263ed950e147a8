// The delivery worker: claims due recipients from the queue store, groups them into deliveries
// (one message to one domain), runs those under a total and a per-domain concurrency limit,
// and turns each recipient's result into the queue's next state — delivered, retried later with
// exponential backoff and jitter, or bounced with a delivery report to the sender.

import { randomBytes } from "node:crypto";
import { hostname as osHostname } from "node:os";
import type { EventChannel, HookRunner, Logger, ServerContext } from "@postern/core";
import { newQueueId } from "@postern/core";
import type { Deliverer, DeliveryJob, RecipientResult } from "./delivery.ts";
import { type OutboundHooks, outboundDelivery } from "./delivery-hooks.ts";
import { buildDsn, type DsnAction, type DsnRecipient, has8bit, readOriginal } from "./dsn.ts";
import type { OutboundMetrics } from "./metrics.ts";
import type { ResolvedOutboundOptions } from "./options.ts";
import type {
  Claim,
  DeliveryReply,
  MessageEnvelope,
  QueueStore,
  RecipientOutcome,
  RecipientRecord,
} from "./queue/store.ts";
import { type MessageSigner, signMessage } from "./signer.ts";

export interface RetryPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  jitter: number;
  maxAgeMs: number;
}

/** Delay before attempt n+1 after n failed attempts: exponential, capped, shortened at random. */
export function retryDelay(policy: RetryPolicy, attempts: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** Math.max(0, attempts - 1));
  return Math.round(base * (1 - policy.jitter * random()));
}

/**
 * Whether the sender asked for this kind of report (RFC 3461 §4.1). NEVER means none; no NOTIFY
 * means failures and delays (the RFC lets the MTA choose FAILURE or FAILURE,DELAY; Postfix and
 * Exim warn of delays too), never successes.
 */
export function wantsReport(notify: readonly string[] | undefined, kind: "SUCCESS" | "DELAY" | "FAILURE"): boolean {
  if (!notify || notify.length === 0) return kind !== "SUCCESS";
  const asked = notify.map((value) => value.toUpperCase());
  return asked.includes(kind) && !asked.includes("NEVER");
}

/** One recipient of a report about to be written. */
export interface Reportable {
  recipient: Pick<RecipientRecord, "address" | "orcpt">;
  reply: DeliveryReply;
  action: DsnAction;
}

export interface RunnerOptions {
  store: QueueStore;
  deliverer: Deliverer;
  options: ResolvedOutboundOptions;
  hooks: HookRunner<OutboundHooks>;
  events: EventChannel;
  metrics: OutboundMetrics;
  log: Logger;
  hostname: string;
  signer: MessageSigner | undefined;
  /** Core's local submission: reports to a local sender are stored here, not sent out. */
  submit: ServerContext["submit"];
}

interface Job {
  claim: Claim;
  domain: string;
  recipients: RecipientRecord[];
}

export class DeliveryRunner {
  readonly worker: string;
  readonly #store: QueueStore;
  readonly #deliverer: Deliverer;
  readonly #options: ResolvedOutboundOptions;
  readonly #hooks: HookRunner<OutboundHooks>;
  readonly #events: EventChannel;
  readonly #metrics: OutboundMetrics;
  readonly #log: Logger;
  readonly #hostname: string;
  readonly #signer: MessageSigner | undefined;
  readonly #submit: ServerContext["submit"];
  /** Claimed deliveries, running or waiting for their domain's turn. */
  #claimed = 0;
  readonly #running = new Set<Promise<void>>();
  readonly #domainActive = new Map<string, number>();
  readonly #domainWaiting = new Map<string, Job[]>();
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #woken = false;
  #renewTimer: NodeJS.Timeout | undefined;

  constructor(options: RunnerOptions) {
    this.#store = options.store;
    this.#deliverer = options.deliverer;
    this.#options = options.options;
    this.#hooks = options.hooks;
    this.#events = options.events;
    this.#metrics = options.metrics;
    this.#log = options.log;
    this.#hostname = options.hostname;
    this.#signer = options.signer;
    this.#submit = options.submit;
    this.worker = options.options.worker.id ?? `${osHostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  }

  start(): void {
    if (this.#loop) return;
    this.#stopping = false;
    const { leaseMs } = this.#options.worker;
    this.#renewTimer = setInterval(
      () => {
        if (this.#claimed === 0) return;
        this.#store
          .renew(this.worker, leaseMs)
          .catch((error: Error) => this.#log.warn({ err: error.message }, "lease renewal failed"));
      },
      Math.max(50, Math.floor(leaseMs / 3)),
    );
    this.#renewTimer.unref();
    this.#loop = this.#run();
  }

  /** Looks at the queue now (new mail, a job finished, an operator retry). */
  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.wake();
    await this.#loop;
    this.#loop = undefined;
    // Deliveries waiting for their domain's turn never started: give them back at once.
    for (const [domain, jobs] of this.#domainWaiting) {
      for (const job of jobs) {
        await this.#store
          .release(
            this.worker,
            job.claim.message.id,
            job.recipients.map((recipient) => recipient.index),
          )
          .catch(() => undefined);
        this.#claimed--;
      }
      this.#domainWaiting.delete(domain);
    }
    const deadline = new Promise((resolve) => setTimeout(resolve, this.#options.worker.shutdownTimeoutMs).unref());
    await Promise.race([Promise.allSettled([...this.#running]), deadline]);
    clearInterval(this.#renewTimer);
  }

  async #sleep(ms: number): Promise<void> {
    if (this.#woken || this.#stopping) {
      this.#woken = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
    this.#wake = undefined;
    this.#woken = false;
  }

  async #run(): Promise<void> {
    const { total } = this.#options.concurrency;
    const { pollIntervalMs, leaseMs } = this.#options.worker;
    while (!this.#stopping) {
      let claimed = 0;
      let limit = 0;
      if (this.#claimed < total) {
        limit = total - this.#claimed;
        try {
          const claims = await this.#store.claim({ worker: this.worker, limit, leaseMs });
          for (const claim of claims) claimed += this.#schedule(claim);
        } catch (error) {
          this.#log.error({ err: (error as Error).message }, "claiming from the queue failed");
          await this.#sleep(pollIntervalMs);
          continue;
        }
      }
      // Claim again at once only when this claim was cut at its limit: one that came back short
      // took everything due, and asking again found nothing, one empty query (a PostgreSQL round
      // trip) per message queued. Mail arriving meanwhile wakes the loop (#sleep returns at once).
      if (claimed >= limit && claimed > 0 && this.#claimed < total) continue;
      let wait = pollIntervalMs;
      if (this.#claimed < total) {
        const due = await this.#store.nextDue().catch(() => undefined);
        if (due !== undefined) wait = Math.min(pollIntervalMs, Math.max(25, due - Date.now()));
      }
      await this.#sleep(wait);
    }
  }

  /** Splits a claim into one delivery per domain and starts or queues them; returns how many. */
  #schedule(claim: Claim): number {
    const byDomain = new Map<string, RecipientRecord[]>();
    for (const recipient of claim.recipients) {
      byDomain.set(recipient.domain, [...(byDomain.get(recipient.domain) ?? []), recipient]);
    }
    for (const [domain, recipients] of byDomain) {
      this.#claimed++;
      const job: Job = { claim, domain, recipients };
      if ((this.#domainActive.get(domain) ?? 0) < this.#options.concurrency.perDomain) this.#start(job);
      else this.#domainWaiting.set(domain, [...(this.#domainWaiting.get(domain) ?? []), job]);
    }
    return byDomain.size;
  }

  #start(job: Job): void {
    this.#domainActive.set(job.domain, (this.#domainActive.get(job.domain) ?? 0) + 1);
    const running = this.#execute(job)
      .catch((error: Error) =>
        this.#log.error({ err: error, queueId: job.claim.message.id }, "delivery failed unexpectedly"),
      )
      .finally(() => {
        this.#running.delete(running);
        this.#claimed--;
        const active = (this.#domainActive.get(job.domain) ?? 1) - 1;
        if (active > 0) this.#domainActive.set(job.domain, active);
        else this.#domainActive.delete(job.domain);
        const waiting = this.#domainWaiting.get(job.domain);
        const next = waiting?.shift();
        if (waiting && waiting.length === 0) this.#domainWaiting.delete(job.domain);
        if (next && !this.#stopping) this.#start(next);
        else if (next) this.#domainWaiting.set(job.domain, [next, ...(waiting ?? [])]);
        this.wake();
      });
    this.#running.add(running);
  }

  async #execute(job: Job): Promise<void> {
    const { message } = job.claim;
    const started = Date.now();
    const deliveryJob: DeliveryJob = {
      message,
      domain: job.domain,
      recipients: job.recipients,
      openBody: () => this.#store.body(message.id),
    };
    let results: RecipientResult[];
    try {
      results = await this.#deliverer.deliver(deliveryJob);
    } catch (error) {
      const reply: DeliveryReply = { code: 451, status: "4.3.0", text: `local error: ${(error as Error).message}` };
      results = job.recipients.map((recipient) => ({ index: recipient.index, kind: "temporary", reply }));
    }
    this.#metrics.deliveryDuration.observe((Date.now() - started) / 1000);
    await this.#record(job, results);
  }

  /**
   * Throttled recipients go back to the queue for the wait the throttle named (plus up to a
   * tenth, so they don't all come back at once): released, not completed, so it is no attempt.
   */
  async #postpone(job: Job, throttled: readonly RecipientResult[]): Promise<void> {
    const { message } = job.claim;
    const byDelay = new Map<number, RecipientResult[]>();
    for (const result of throttled) {
      const delay = Math.round((result.retryAfterMs ?? 1_000) * (1 + 0.1 * Math.random()));
      byDelay.set(delay, [...(byDelay.get(delay) ?? []), result]);
    }
    for (const [delayMs, results] of byDelay) {
      try {
        await this.#store.release(
          this.worker,
          message.id,
          results.map((result) => result.index),
          { delayMs },
        );
      } catch (error) {
        // The lease runs out and the recipients come back anyway, still without an attempt.
        this.#log.warn({ err: (error as Error).message, queueId: message.id }, "throttled recipients not released");
      }
      const first = results[0]!;
      this.#metrics.throttled.inc(
        { rule: first.throttle?.rule ?? "", limit: first.throttle?.limit ?? "messages" },
        results.length,
      );
      this.#log.info(
        {
          queueId: message.id,
          domain: job.domain,
          to: results.map((result) => job.recipients.find((r) => r.index === result.index)?.address),
          reply: first.reply.text,
          retryInMs: delayMs,
        },
        "throttled",
      );
    }
  }

  async #record(job: Job, allResults: readonly RecipientResult[]): Promise<void> {
    const { message } = job.claim;
    const throttled = allResults.filter((result) => result.kind === "throttled");
    if (throttled.length > 0) await this.#postpone(job, throttled);
    const results = throttled.length > 0 ? allResults.filter((result) => result.kind !== "throttled") : allResults;
    if (results.length === 0) return;
    const retry = this.#options.retry;
    const { delayWarningMs } = this.#options.dsn;
    const now = Date.now();
    const outcomes: RecipientOutcome[] = [];
    const bounced: Reportable[] = [];
    const delayed: Reportable[] = [];
    const relayed: Reportable[] = [];
    const deferredAt = new Map<number, number>();
    for (const result of results) {
      const recipient = job.recipients.find((candidate) => candidate.index === result.index);
      if (!recipient) continue;
      if (result.kind === "delivered") {
        outcomes.push({ index: result.index, result: "delivered", reply: result.reply });
        // A next hop without DSN ends the chain of reports: say so now if the sender asked.
        if (!result.dsnPassed && wantsReport(recipient.notify, "SUCCESS")) {
          relayed.push({ recipient, reply: result.reply, action: "relayed" });
        }
      } else if (result.kind === "permanent") {
        outcomes.push({ index: result.index, result: "bounced", reply: result.reply });
        if (wantsReport(recipient.notify, "FAILURE"))
          bounced.push({ recipient, reply: result.reply, action: "failed" });
      } else {
        const age = now - message.createdAt;
        if (age >= retry.maxAgeMs) {
          const days = Math.round((retry.maxAgeMs / 86_400_000) * 10) / 10;
          const reply: DeliveryReply = {
            ...result.reply,
            status: "4.4.7",
            text: `delivery time expired after ${days} days; last error: ${result.reply.text}`,
          };
          outcomes.push({ index: result.index, result: "bounced", reply });
          if (wantsReport(recipient.notify, "FAILURE")) bounced.push({ recipient, reply, action: "failed" });
        } else {
          // The last attempt happens at the maximum age, not a full backoff after it.
          const delay = Math.min(retryDelay(retry, recipient.attempts + 1), retry.maxAgeMs - age);
          outcomes.push({ index: result.index, result: "deferred", reply: result.reply, retryAfterMs: delay });
          deferredAt.set(result.index, now + delay);
          if (
            delayWarningMs > 0 &&
            age >= delayWarningMs &&
            recipient.delayReportedAt === undefined &&
            wantsReport(recipient.notify, "DELAY")
          ) {
            delayed.push({ recipient, reply: result.reply, action: "delayed" });
          }
        }
      }
    }

    // Reports on reports and on the null sender's mail would loop or go nowhere.
    const reporting = message.from !== "" && message.kind !== "dsn";
    let dsnId: string | undefined;
    if (reporting && bounced.length > 0) {
      try {
        dsnId = await this.sendReport(message, bounced, now);
      } catch (error) {
        // No report stored means no bounce recorded: retry these recipients later instead.
        this.#log.error(
          { err: (error as Error).message, queueId: message.id },
          "delivery report not queued; bounce postponed",
        );
        for (const { recipient, reply } of bounced) {
          const index = outcomes.findIndex((outcome) => outcome.index === (recipient as RecipientRecord).index);
          outcomes[index] = {
            index: (recipient as RecipientRecord).index,
            result: "deferred",
            reply,
            retryAfterMs: retry.initialDelayMs,
          };
        }
      }
    }
    if (reporting && delayed.length > 0) {
      try {
        await this.sendReport(message, delayed, now);
        // Recorded with the attempt, so the warning goes out once (a failed one is tried next time).
        for (const { recipient } of delayed) {
          const index = outcomes.findIndex((outcome) => outcome.index === (recipient as RecipientRecord).index);
          const outcome = outcomes[index]!;
          if (outcome.result === "deferred") outcomes[index] = { ...outcome, delayReported: true };
        }
      } catch (error) {
        this.#log.error({ err: (error as Error).message, queueId: message.id }, "delay report not queued");
      }
    }
    if (reporting && relayed.length > 0) {
      // The message went out; a lost success report is logged, never a reason to send it again.
      await this.sendReport(message, relayed, now).catch((error: Error) =>
        this.#log.error({ err: error.message, queueId: message.id }, "success report not queued"),
      );
    }

    const recorded = new Set(await this.#store.complete(this.worker, message.id, outcomes));
    if (recorded.size < outcomes.length) {
      this.#log.warn(
        { queueId: message.id, domain: job.domain },
        "some outcomes were not recorded (lease lost or message deleted)",
      );
    }
    for (const outcome of outcomes) {
      if (!recorded.has(outcome.index)) continue;
      const recipient = job.recipients.find((candidate) => candidate.index === outcome.index)!;
      const tls = results.find((result) => result.index === outcome.index)?.tls;
      const event = {
        message,
        recipient,
        reply: outcome.reply,
        attempts: recipient.attempts + 1,
        ...(tls ? { tls } : {}),
      };
      const logFields = {
        queueId: message.id,
        to: recipient.address,
        relay: outcome.reply.remote,
        attempts: event.attempts,
        status: outcome.reply.status,
        reply: `${outcome.reply.code} ${outcome.reply.text}`,
      };
      if (outcome.result === "delivered") {
        this.#metrics.delivered.inc();
        this.#log.info(logFields, "delivered");
        await this.#emit("delivered", event);
      } else if (outcome.result === "deferred") {
        this.#metrics.deferred.inc();
        this.#metrics.domainFailures.inc({ domain: job.domain, outcome: "deferred" });
        this.#log.info({ ...logFields, retryInMs: outcome.retryAfterMs }, "deferred");
        await this.#emit("deferred", {
          ...event,
          nextAttemptAt: deferredAt.get(outcome.index) ?? now + outcome.retryAfterMs,
        });
      } else {
        this.#metrics.bounced.inc();
        this.#metrics.domainFailures.inc({ domain: job.domain, outcome: "bounced" });
        this.#log.info({ ...logFields, dsn: dsnId }, "bounced");
        await this.#emit("bounced", { ...event, dsnId });
      }
    }
  }

  /**
   * Writes a delivery report (RFC 3464) to the envelope sender and stores it: locally when one of
   * the server's own rcptTo hooks claims the sender, else in this queue. Returns its queue ID.
   * Failures return the message (or its header with RET=HDRS, REQUIRETLS or when it is large);
   * delays and successes return the header only (RFC 3461 §4.3: RET=FULL asks for failures).
   */
  async sendReport(message: MessageEnvelope, entries: readonly Reportable[], now: number): Promise<string | undefined> {
    const { bounces } = this.#options;
    const failure = entries.some((entry) => entry.action === "failed");
    const headersOnly = !failure || message.dsn?.ret?.toUpperCase() === "HDRS" || message.requireTls;
    // A "delivered" report is about a message in a local mailbox, not in this queue: none returned.
    const original = entries.every((entry) => entry.action === "delivered")
      ? undefined
      : await readOriginal(await this.#store.body(message.id), { headersOnly, maxSize: bounces.maxReturnedSize });
    const retry = this.#options.retry;
    const recipients: DsnRecipient[] = entries.map(({ recipient, reply, action }) => ({
      address: recipient.address,
      orcpt: recipient.orcpt,
      action,
      reply,
      lastAttemptAt: new Date(now),
      ...(action === "delayed" ? { willRetryUntil: new Date(message.createdAt + retry.maxAgeMs) } : {}),
    }));
    let bytes = buildDsn({
      hostname: this.#hostname,
      fromLocalPart: bounces.from,
      message,
      recipients,
      original: original?.bytes,
      headersOnly: original?.headersOnly ?? true,
      now: new Date(now),
    });
    const id = newQueueId();
    if (this.#signer) bytes = await signMessage(this.#signer, bytes, { id, from: "", recipients: [message.from] });
    // A sender of ours gets the report in their mailbox, whatever routes outbound has (a smarthost
    // would lose it): the server's own rcptTo hooks decide, and only an address none of them
    // claims goes out through this queue.
    const local = await this.#submit({
      from: "",
      recipients: [message.from],
      message: bytes,
      declineRoutes: this.#options.queueRoutes,
    });
    // What the hooks routed to outbound's own routes goes out from here — to the address they
    // resolved it to (an SRS sender reversed is the original sender, not the SRS address). An
    // address nobody claims for relaying (550 5.7.1, a stranger's domain) goes out as written.
    // A temporary refusal (a directory down) postpones the bounce; any other refusal (a local
    // user who no longer exists) has nowhere to go and is logged.
    const temporary = local.refused.find(({ reply }) => reply.code >= 400 && reply.code < 500);
    if (temporary) throw new Error(`the report's recipient was deferred: ${temporary.reply.message}`);
    const outgoing = [
      ...local.declined.map((recipient) => recipient.address),
      ...local.refused.filter(({ reply }) => reply.message.startsWith("5.7.1 ")).map(({ address }) => address),
    ];
    for (const { address, reply } of local.refused) {
      if (!reply.message.startsWith("5.7.1 ")) {
        this.#log.warn(
          { queueId: message.id, to: address, reply: `${reply.code} ${reply.message}` },
          "delivery report dropped: its recipient is refused here",
        );
      }
    }
    if (outgoing.length === 0) return local.queueId;
    const envelope: MessageEnvelope = {
      id,
      from: "",
      createdAt: now,
      size: bytes.length,
      // RFC 8689 §5: the report on a REQUIRETLS message is itself sent with REQUIRETLS.
      requireTls: message.requireTls,
      smtpUtf8: message.smtpUtf8 || outgoing.some((address) => has8bit(address)),
      bodyType: has8bit(bytes) ? "8bitmime" : "7bit",
      kind: "dsn",
    };
    await this.#store.enqueue(
      envelope,
      outgoing.map((address) => ({ address, notify: ["NEVER"] })),
      bytes,
    );
    this.#metrics.queued.inc();
    this.wake();
    return id;
  }

  async #emit<Name extends "delivered" | "deferred" | "bounced">(
    name: Name,
    event: Parameters<OutboundHooks[Name]>[0],
  ): Promise<void> {
    if (this.#events.observed(outboundDelivery)) {
      this.#events.emit(outboundDelivery, { outcome: name, ...event } as never);
    }
    await this.#hooks.all(name, [event] as never, { queueId: event.message.id });
  }
}
