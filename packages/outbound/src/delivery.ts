// One delivery attempt: one message to the recipients at one domain. Routing gives the hosts in
// order; each is tried until one gives an answer about the recipients. A host that cannot be
// reached, refuses the session or can't do the TLS the route needs sends us to the next host; an
// answer about the message (MAIL, RCPT, DATA replies) ends the attempt, per recipient.
import type { Readable } from "node:stream";
import type { Logger } from "@postern/core";
import type { ConnectionPool } from "./connection-pool.ts";
import { has8bit, readOriginal } from "./dsn.ts";
import type { OutboundMetrics } from "./metrics.ts";
import type { DeliveryReply, MessageEnvelope, RecipientRecord } from "./queue/store.ts";
import { localReply } from "./replies.ts";
import type { NextHop, Router } from "./routing.ts";
import { type RecipientDsn, type SendEnvelope, SessionError, type SmtpSession } from "./smtp-session.ts";

export interface DeliveryJob {
  readonly message: MessageEnvelope;
  readonly domain: string;
  readonly recipients: readonly RecipientRecord[];
  /** A fresh stream of the stored message; called once per transaction. */
  openBody(): Promise<Readable>;
}

export type ResultKind = "delivered" | "temporary" | "permanent";

export interface RecipientResult {
  readonly index: number;
  readonly kind: ResultKind;
  readonly reply: DeliveryReply;
  /**
   * Delivered: the next hop offered DSN and took the recipient's NOTIFY/ORCPT with it, so reports
   * from here on are its job (RFC 3461 §5.2.2); otherwise a SUCCESS request is answered "relayed".
   */
  readonly dsnPassed?: boolean;
}

/** Why a hop could not take the message at all (the next host is tried). */
type Unable = "tls" | "smtputf8" | undefined;

type HopOutcome =
  | { readonly kind: "done"; readonly results: RecipientResult[] }
  | { readonly kind: "next"; readonly reply: DeliveryReply; readonly tls: boolean; readonly unable?: Unable };

function kindOf(reply: DeliveryReply): ResultKind {
  if (reply.code >= 200 && reply.code < 300) return "delivered";
  return reply.code >= 500 ? "permanent" : "temporary";
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Whether a transaction needs SMTPUTF8: UTF-8 in an address, or in the header of a message received with it. */
async function utf8Header(body: Readable): Promise<boolean> {
  const { bytes } = await readOriginal(body, { headersOnly: true, maxSize: 0 });
  return has8bit(bytes);
}

export interface DelivererOptions {
  router: Router;
  pool: ConnectionPool;
  metrics: OutboundMetrics;
  log: Logger;
  maxRecipientsPerTransaction: number;
}

export class Deliverer {
  readonly #options: DelivererOptions;

  constructor(options: DelivererOptions) {
    this.#options = options;
  }

  async deliver(job: DeliveryJob): Promise<RecipientResult[]> {
    const all = (kind: ResultKind, reply: DeliveryReply) =>
      job.recipients.map((recipient) => ({ index: recipient.index, kind, reply }));
    let plan: Awaited<ReturnType<Router["plan"]>>;
    try {
      plan = await this.#options.router.plan({ domain: job.domain, message: job.message, recipients: job.recipients });
    } catch (error) {
      return all("temporary", localReply("4.4.3", `routing for ${job.domain} failed: ${(error as Error).message}`));
    }
    if (plan.kind === "bounce") return all("permanent", plan.reply);
    if (plan.kind === "defer") return all("temporary", plan.reply);
    if (plan.hops.length === 0) return all("temporary", localReply("4.4.3", `no next hop for ${job.domain}`));
    const results: RecipientResult[] = [];
    for (const part of chunk(job.recipients, this.#options.maxRecipientsPerTransaction)) {
      results.push(...(await this.#deliverTransaction(job, plan.hops, part)));
    }
    return results;
  }

  async #deliverTransaction(
    job: DeliveryJob,
    hops: readonly NextHop[],
    recipients: readonly RecipientRecord[],
  ): Promise<RecipientResult[]> {
    const requireTls = job.message.requireTls;
    let last: DeliveryReply | undefined;
    let tlsRefusals = 0;
    let utf8Refusals = 0;
    let utf8Reply: DeliveryReply | undefined;
    for (const route of hops) {
      // RFC 8689: a REQUIRETLS message only goes over TLS to a verified peer that offers REQUIRETLS;
      // a DANE match authenticates the peer as well as a CA would (RFC 8689 §4.2.1).
      const daneAuthenticated = Boolean(route.dane && route.dane.records.length > 0);
      const hop: NextHop = requireTls && !daneAuthenticated ? { ...route, tls: "verify" } : route;
      const outcome = await this.#tryHop(job, hop, recipients);
      if (outcome.kind === "done") return outcome.results;
      last = outcome.reply;
      if (outcome.tls) tlsRefusals++;
      if (outcome.unable === "smtputf8") {
        utf8Refusals++;
        utf8Reply = outcome.reply;
      }
      this.#options.log.info(
        { queueId: job.message.id, domain: job.domain, host: outcome.reply.remote, reply: outcome.reply.text },
        "next hop failed, trying the next one",
      );
    }
    let reply = last ?? localReply("4.4.1", `no next hop for ${job.domain} could be reached`);
    if (utf8Reply && utf8Refusals === hops.length) {
      // RFC 6531 §3.2: no host of the domain can take the message without SMTPUTF8 (no downgrade).
      return recipients.map((recipient) => ({ index: recipient.index, kind: "permanent", reply: utf8Reply }));
    }
    if (requireTls && tlsRefusals === hops.length) {
      // No host can ever take it the way the sender demanded: say so now rather than in 5 days.
      reply = localReply(
        "5.7.30",
        `REQUIRETLS: no MX host of ${job.domain} offered verified TLS with REQUIRETLS (${reply.text})`,
        reply.remote,
      );
      return recipients.map((recipient) => ({ index: recipient.index, kind: "permanent", reply }));
    }
    return recipients.map((recipient) => ({ index: recipient.index, kind: "temporary", reply }));
  }

  async #tryHop(job: DeliveryJob, hop: NextHop, recipients: readonly RecipientRecord[]): Promise<HopOutcome> {
    const { pool, metrics, log } = this.#options;
    let connectOptions: { plaintext?: boolean; fresh?: boolean } = {};
    for (let round = 0; round < 3; round++) {
      let session: SmtpSession;
      let reused: boolean;
      try {
        ({ session, reused } = await pool.acquire(hop, connectOptions));
      } catch (error) {
        if (!(error instanceof SessionError)) throw error;
        // Opportunistic TLS that fails in the handshake falls back to plaintext, as other MTAs do.
        if (hop.tls === "opportunistic" && !connectOptions.plaintext && /^TLS with/.test(error.reply.text)) {
          log.info(
            { queueId: job.message.id, host: error.reply.remote, reply: error.reply.text },
            "TLS failed, retrying in plaintext",
          );
          connectOptions = { plaintext: true };
          continue;
        }
        return { kind: "next", reply: error.reply, tls: error.tls };
      }
      metrics.connections.inc({ reused: String(reused) });
      if (hop.mtaSts === "testing" && !session.verified) {
        log.warn(
          { queueId: job.message.id, domain: job.domain, host: session.remote },
          "MTA-STS (testing): TLS with this MX is not verified; enforce mode would refuse it",
        );
      }
      const outcome = await this.#transaction(job, session, recipients);
      if (outcome === "retry-fresh" && reused) {
        pool.release(session, false);
        connectOptions = { fresh: true };
        continue;
      }
      if (outcome === "retry-fresh") {
        pool.release(session, false);
        return {
          kind: "next",
          reply: localReply("4.4.2", `${session.remote} closed the connection`, session.remote),
          tls: false,
        };
      }
      return outcome;
    }
    return { kind: "next", reply: localReply("4.4.2", `${hop.name}: no usable connection`), tls: false };
  }

  async #needsSmtpUtf8(
    job: DeliveryJob,
    recipients: readonly RecipientRecord[],
  ): Promise<"address" | "header" | undefined> {
    if (has8bit(job.message.from) || recipients.some((recipient) => has8bit(recipient.address))) return "address";
    // RFC 6532 header fields travel only with SMTPUTF8; a message received without it has none.
    if (!job.message.smtpUtf8) return undefined;
    return (await utf8Header(await job.openBody())) ? "header" : undefined;
  }

  async #transaction(
    job: DeliveryJob,
    session: SmtpSession,
    recipients: readonly RecipientRecord[],
  ): Promise<HopOutcome | "retry-fresh"> {
    const { pool } = this.#options;
    const { message } = job;
    const utf8 = session.offers("SMTPUTF8") ? undefined : await this.#needsSmtpUtf8(job, recipients);
    if (utf8) {
      pool.release(session, true);
      const reply =
        utf8 === "address"
          ? localReply(
              "5.6.7",
              `${session.remote} does not offer SMTPUTF8, which the UTF-8 addresses need`,
              session.remote,
            )
          : localReply(
              "5.6.9",
              `${session.remote} does not offer SMTPUTF8, which the UTF-8 header fields need`,
              session.remote,
            );
      return { kind: "next", reply, tls: false, unable: "smtputf8" };
    }
    const recipientDsn = new Map<string, RecipientDsn>();
    for (const recipient of recipients) {
      if (recipient.notify?.length || recipient.orcpt) {
        recipientDsn.set(recipient.address, { notify: recipient.notify, orcpt: recipient.orcpt });
      }
    }
    const dsnPassed = session.offers("DSN");
    const envelope: SendEnvelope = {
      from: message.from,
      to: recipients.map((recipient) => recipient.address),
      size: message.size,
      requireTls: message.requireTls,
      use8BitMime: message.bodyType.toLowerCase() === "8bitmime",
      dsn:
        message.dsn?.ret || message.dsn?.envid
          ? {
              ...(message.dsn?.ret ? { ret: message.dsn.ret } : {}),
              ...(message.dsn?.envid ? { envid: message.dsn.envid } : {}),
            }
          : undefined,
      recipientDsn,
    };
    const body = await job.openBody();
    const result = await session.send(envelope, body);
    body.destroy();
    const byAddress = (address: string) => recipients.filter((recipient) => recipient.address === address);
    const each = (kind: ResultKind, reply: DeliveryReply, list = recipients) =>
      list.map((recipient) => ({ index: recipient.index, kind, reply }));
    const refusedResults = (rejected: Map<string, DeliveryReply>) =>
      [...rejected].flatMap(([address, reply]) => each(kindOf(reply), reply, byAddress(address)));

    if (result.kind === "sent") {
      pool.release(session, true);
      const accepted = result.accepted.flatMap((address) => byAddress(address));
      const delivered = each("delivered", result.reply, accepted).map((entry) => ({ ...entry, dsnPassed }));
      return { kind: "done", results: [...delivered, ...refusedResults(result.rejected)] };
    }
    switch (result.stage) {
      case "REQUIRETLS":
        pool.release(session, true);
        return { kind: "next", reply: result.reply, tls: true };
      case "MAIL": {
        pool.release(session, await session.reset());
        // A refused sender is final for this message; a temporary refusal may be this host only.
        if (kindOf(result.reply) === "permanent") return { kind: "done", results: each("permanent", result.reply) };
        return { kind: "next", reply: result.reply, tls: false };
      }
      case "RCPT":
        pool.release(session, await session.reset());
        return { kind: "done", results: refusedResults(result.rejected) };
      case "DATA": {
        pool.release(session, await session.reset());
        const accepted = result.accepted.flatMap((address) => byAddress(address));
        const answered = each(kindOf(result.reply), result.reply, accepted).map((entry) => ({ ...entry, dsnPassed }));
        return { kind: "done", results: [...answered, ...refusedResults(result.rejected)] };
      }
      case "CONNECTION":
        pool.release(session, false);
        // Dropped before the message went out: nothing reached the peer, so another try is safe.
        if (result.untouched) return "retry-fresh";
        // Dropped during or after the message: the peer may have it; retry later (a duplicate is
        // possible, as with any MTA when the final reply is lost).
        return { kind: "done", results: each("temporary", result.reply) };
    }
  }
}
