// One delivery attempt: one message to the recipients at one domain. Routing gives the hosts in
// order; each is tried until one gives an answer about the recipients. A host that cannot be
// reached, refuses the session or can't do the TLS the route needs sends us to the next host; an
// answer about the message (MAIL, RCPT, DATA replies) ends the attempt, per recipient.
import type { Readable } from "node:stream";
import type { Logger } from "@postern/core";
import { type ConnectionPool, ThrottledError } from "./connection-pool.ts";
import type { DanePolicies } from "./dane.ts";
import type { TlsFailureType, TlsOutcome, TlsPolicy } from "./delivery-hooks.ts";
import { has8bit, readOriginal } from "./dsn.ts";
import type { OutboundMetrics } from "./metrics.ts";
import { type MtaStsPolicies, mxAllowed, mxPattern } from "./mta-sts.ts";
import type { DeliveryReply, MessageEnvelope, RecipientRecord } from "./queue/store.ts";
import { describeHost, localReply } from "./replies.ts";
import type { NextHop, Router, StsRefusedMx } from "./routing.ts";
import { type RecipientDsn, type SendEnvelope, SessionError, type SmtpSession } from "./smtp-session.ts";
import type { SourcePools } from "./sources.ts";
import type { MessageTicket, SlotKey, Throttle } from "./throttle.ts";
import {
  certificateFailure,
  mxNotInPolicy,
  stsPolicyStrings,
  stsRefusedOutcome,
  type TlsOutcomes,
  tlsaString,
} from "./tls-outcome.ts";

export interface DeliveryJob {
  readonly message: MessageEnvelope;
  readonly domain: string;
  readonly recipients: readonly RecipientRecord[];
  /** A fresh stream of the stored message; called once per transaction. */
  openBody(): Promise<Readable>;
}

/**
 * "throttled": a throttle held the transaction back before it started; not an attempt — the
 * recipient goes back to the queue for `retryAfterMs` with its attempt count unchanged.
 */
export type ResultKind = "delivered" | "temporary" | "permanent" | "throttled";

export interface RecipientResult {
  readonly index: number;
  readonly kind: ResultKind;
  readonly reply: DeliveryReply;
  /**
   * Delivered: the next hop offered DSN and took the recipient's NOTIFY/ORCPT with it, so reports
   * from here on are its job (RFC 3461 §5.2.2); otherwise a SUCCESS request is answered "relayed".
   */
  readonly dsnPassed?: boolean;
  /** The TLS outcomes of the connections opened for this recipient's transaction (MX routes only). */
  readonly tls?: readonly TlsOutcome[];
  /** Throttled: how long the recipient waits in the queue before it is tried again. */
  readonly retryAfterMs?: number;
  /** Throttled: which rule, and what it limits. */
  readonly throttle?: { readonly rule: string; readonly limit: "messages" | "connections" } | undefined;
}

/** Why a hop could not take the message at all (the next host is tried). */
type Unable = "tls" | "smtputf8" | undefined;

type HopOutcome =
  | { readonly kind: "done"; readonly results: RecipientResult[] }
  | {
      readonly kind: "throttled";
      readonly reply: DeliveryReply;
      readonly retryAfterMs: number;
      readonly rule: string;
      readonly limit: "messages" | "connections";
    }
  | { readonly kind: "next"; readonly reply: DeliveryReply; readonly tls: boolean; readonly unable?: Unable };

function kindOf(reply: DeliveryReply): Exclude<ResultKind, "throttled"> {
  if (reply.code >= 200 && reply.code < 300) return "delivered";
  return reply.code >= 500 ? "permanent" : "temporary";
}

const describeHop = (hop: NextHop) => describeHost(hop.name, hop.address, hop.port);

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
  /** Where each connection's TLS outcome goes (the `outboundTls` observer event). */
  tlsOutcomes?: TlsOutcomes | undefined;
  /** For the MTA-STS policy text a TLS outcome names. */
  mtaSts?: MtaStsPolicies | undefined;
  /** For the TLSA records a TLS outcome names. */
  dane?: DanePolicies | undefined;
  /** Per-destination throttles; undefined when none is configured. */
  throttle?: Throttle | undefined;
  /** Source-address pools; undefined when none is configured. */
  sources?: SourcePools | undefined;
}

/** The facts of one new connection that a TLS outcome reports. */
interface TlsFacts {
  readonly result: "success" | TlsFailureType;
  readonly reasonCode?: string | undefined;
  readonly detail?: string | undefined;
  readonly sendingIp?: string | undefined;
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
    // Once per attempt, whether the attempt goes on to other hosts or is deferred for want of any.
    if (plan.stsRefused) this.#recordRefused(job, plan.stsRefused);
    if (plan.kind === "defer") return all("temporary", plan.reply);
    if (plan.hops.length === 0) return all("temporary", localReply("4.4.3", `no next hop for ${job.domain}`));
    // TLS reports are about the recipient domain's MX hosts, not a relay or smarthost of ours.
    const reportTls = plan.source === "mx" || plan.source === "implicit-mx";
    const results: RecipientResult[] = [];
    for (const part of chunk(job.recipients, this.#options.maxRecipientsPerTransaction)) {
      const tls: TlsOutcome[] = [];
      const answered = await this.#deliverTransaction(job, plan.hops, part, reportTls ? tls : undefined);
      results.push(...(tls.length > 0 ? answered.map((result) => ({ ...result, tls })) : answered));
    }
    return results;
  }

  async #deliverTransaction(
    job: DeliveryJob,
    hops: readonly NextHop[],
    recipients: readonly RecipientRecord[],
    tls: TlsOutcome[] | undefined,
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
      let hop: NextHop = requireTls && !daneAuthenticated ? { ...route, tls: "verify" } : route;
      const source = this.#options.sources?.pick(job.message.from, job.domain, hop.name, hop.address);
      if (source?.kind === "none") {
        // The pool was chosen for this mail on purpose: no other address of ours stands in.
        last = localReply(
          "4.4.0",
          `sources.${source.pool} has no IPv${source.family} address to reach ${describeHop(hop)} from`,
          describeHop(hop),
        );
        this.#options.log.warn({ queueId: job.message.id, domain: job.domain, host: describeHop(hop) }, last.text);
        continue;
      }
      if (source?.kind === "source") {
        hop = { ...hop, localAddress: source.source.localAddress, heloName: source.source.heloName ?? hop.heloName };
      }
      const outcome = await this.#tryHop(job, hop, recipients, tls);
      if (outcome.kind === "done") return outcome.results;
      if (outcome.kind === "throttled") {
        // Not a failure of this host: no backup MX takes the mail instead; it waits in the queue.
        const { reply, retryAfterMs, rule, limit } = outcome;
        return recipients.map((recipient) => ({
          index: recipient.index,
          kind: "throttled",
          reply,
          retryAfterMs,
          throttle: { rule, limit },
        }));
      }
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

  /**
   * One host, under the throttles: a message of each messagesPerMinute rule is taken first (and
   * given back when the host never took the message), then a connection within the limits.
   */
  async #tryHop(
    job: DeliveryJob,
    hop: NextHop,
    recipients: readonly RecipientRecord[],
    tls: TlsOutcome[] | undefined,
  ): Promise<HopOutcome> {
    const { throttle } = this.#options;
    let tickets: readonly MessageTicket[] = [];
    if (throttle) {
      const admission = await throttle.admitMessage(job.domain, hop.name);
      if (admission.kind === "throttled") {
        return {
          kind: "throttled",
          reply: localReply(
            "4.4.5",
            `throttled: messages per minute of throttle "${admission.rule}" used up; next try in ${Math.ceil(admission.retryAfterMs / 1000)} s`,
            describeHop(hop),
          ),
          retryAfterMs: admission.retryAfterMs,
          rule: admission.rule,
          limit: "messages",
        };
      }
      tickets = admission.tickets;
    }
    const outcome = await this.#tryConnection(
      job,
      hop,
      recipients,
      tls,
      throttle?.connectionKeys(job.domain, hop.name),
    );
    if (outcome.kind !== "done" && tickets.length > 0) await throttle!.giveBack(tickets);
    return outcome;
  }

  async #tryConnection(
    job: DeliveryJob,
    hop: NextHop,
    recipients: readonly RecipientRecord[],
    tls: TlsOutcome[] | undefined,
    slots: readonly SlotKey[] | undefined,
  ): Promise<HopOutcome> {
    const { pool, metrics, log } = this.#options;
    let connectOptions: { plaintext?: boolean; fresh?: boolean } = {};
    for (let round = 0; round < 3; round++) {
      let session: SmtpSession;
      let reused: boolean;
      try {
        ({ session, reused } = await pool.acquire(hop, { ...connectOptions, ...(slots ? { slots } : {}) }));
      } catch (error) {
        if (error instanceof ThrottledError) {
          return {
            kind: "throttled",
            reply: localReply(
              "4.4.5",
              `throttled: connection limit reached (throttle ${error.rule}); next try in ${Math.ceil(error.retryAfterMs / 1000)} s`,
              describeHop(hop),
            ),
            retryAfterMs: error.retryAfterMs,
            rule: error.rule,
            limit: "connections",
          };
        }
        if (!(error instanceof SessionError)) throw error;
        if (tls && error.tlsFailure) {
          this.#recordTls(tls, job, hop, {
            result: error.tlsFailure.type,
            reasonCode: error.tlsFailure.code,
            detail: error.reply.text,
            sendingIp: error.localAddress,
          });
        }
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
      // A new connection is a TLS session to report; a plaintext retry's failed handshake already was.
      if (tls && !reused && !connectOptions.plaintext && (session.secure || hop.tls !== "none")) {
        this.#recordTls(tls, job, hop, this.#sessionFacts(job, hop, session));
      }
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

  /** What a new session's TLS came to under the hop's policy. */
  #sessionFacts(job: DeliveryJob, hop: NextHop, session: SmtpSession): TlsFacts {
    const sendingIp = session.localAddress;
    if (!session.secure) {
      return { result: "starttls-not-supported", detail: `${session.remote} did not offer STARTTLS`, sendingIp };
    }
    if (hop.mtaSts && !session.verified) {
      // Only a testing policy lets an unverified session through; enforce refused it in the handshake.
      const failure = certificateFailure(session.authorizationError);
      return {
        result: failure.type,
        reasonCode: failure.code,
        detail: `MTA-STS (${hop.mtaSts}): the certificate of ${session.remote} did not verify`,
        sendingIp,
      };
    }
    const policy = hop.mtaSts ? this.#options.mtaSts?.known(job.domain) : undefined;
    if (hop.mtaSts === "testing" && policy && !mxAllowed(hop.name, policy)) {
      return {
        result: "validation-failure",
        reasonCode: mxNotInPolicy,
        detail: `MTA-STS (testing): ${hop.name} is not an MX host the policy names`,
        sendingIp,
      };
    }
    if (hop.dane && hop.dane.records.length === 0) {
      return { result: "tlsa-invalid", detail: `no usable TLSA record for ${hop.name}`, sendingIp };
    }
    return { result: "success", sendingIp };
  }

  /** The policy a connection to `hop` was held to, as a TLS report names it. */
  #policyFor(job: DeliveryJob, hop: NextHop): TlsPolicy {
    if (hop.dane) {
      // RFC 8460 §3: a DANE policy's domain is its TLSA base domain, the MX host.
      const strings = this.#options.dane?.policyStrings(hop.name) ?? hop.dane.records.map(tlsaString);
      return { type: "tlsa", domain: hop.name, strings, mxHost: hop.name };
    }
    if (hop.mtaSts) {
      const policy = this.#options.mtaSts?.known(job.domain);
      const mxHost = (policy && mxPattern(hop.name, policy)) ?? hop.name;
      return { type: "sts", domain: job.domain, strings: stsPolicyStrings(policy), mxHost };
    }
    return { type: "no-policy-found", domain: job.domain, strings: [], mxHost: hop.name };
  }

  #recordTls(into: TlsOutcome[], job: DeliveryJob, hop: NextHop, facts: TlsFacts): void {
    const outcome: TlsOutcome = {
      policy: this.#policyFor(job, hop),
      recipientDomain: job.domain,
      mxHost: hop.name !== hop.address ? hop.name : undefined,
      receivingIp: hop.address,
      queueId: job.message.id,
      at: Date.now(),
      ...facts,
      sendingIp: facts.sendingIp ?? hop.localAddress,
    };
    into.push(outcome);
    this.#options.tlsOutcomes?.emit(outcome);
  }

  /**
   * MX hosts an MTA-STS enforce policy ruled out were never connected to: they go to the
   * observer channel only (not to the delivery events' `tls`, which lists connections).
   */
  #recordRefused(job: DeliveryJob, refused: readonly StsRefusedMx[]): void {
    const { tlsOutcomes, mtaSts } = this.#options;
    if (!tlsOutcomes?.wanted) return;
    for (const host of refused) {
      tlsOutcomes.record(() =>
        stsRefusedOutcome(host, mtaSts?.known(host.policyDomain), {
          recipientDomain: job.domain,
          queueId: job.message.id,
        }),
      );
    }
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
