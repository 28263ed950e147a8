// Where mail for a domain goes next. In order: route hooks, a static route for the domain, the
// smarthost, an address literal, and otherwise the domain's MX records (RFC 5321 §5.1): sorted
// by preference with ties shuffled, the domain itself when there is no MX (implicit MX), and an
// immediate bounce for a null MX (RFC 7505). MTA-STS narrows and hardens MX routes. A next hop
// that is this server itself is never used: as Postfix does, only MX hosts more preferred than our
// own are tried, and with none the message bounces (5.4.6, mail loops back to myself).
import { isIP } from "node:net";
import type { DnsResolver, HookRunner, Logger } from "@postern/core";
import type { DaneHost, DanePolicies, DaneRequirement } from "./dane.ts";
import type { OutboundHooks, RouteContext, RouteDecision } from "./delivery-hooks.ts";
import { type MtaStsPolicies, mxAllowed } from "./mta-sts.ts";
import { type RelayTarget, type ResolvedOutboundOptions, relayTargetSchema, type TlsLevel } from "./options.ts";
import type { DeliveryReply } from "./queue/store.ts";
import { localReply } from "./replies.ts";

/** One address of one next-hop host, with what the connection to it must look like. */
export interface NextHop {
  /** Host name (for logs, SNI and certificate checks) or the IP itself. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** Implicit TLS. */
  readonly secure: boolean;
  readonly tls: TlsLevel;
  readonly auth?: { readonly user: string; readonly pass: string } | undefined;
  /** MX preference (0 for static routes). */
  readonly priority: number;
  /** Set when an MTA-STS policy applies to this hop. */
  readonly mtaSts?: "enforce" | "testing" | undefined;
  /** Source address to connect from (a source pool); the system's choice when undefined. */
  readonly localAddress?: string | undefined;
  /** EHLO name for this hop (a source pool's); the plugin's heloName when undefined. */
  readonly heloName?: string | undefined;
  /** DNSSEC-secure TLSA records apply (RFC 7672): TLS is required and checked against them. */
  readonly dane?: DaneRequirement | undefined;
}

export type RouteSource = "hook" | "static" | "smarthost" | "literal" | "mx" | "implicit-mx";

/** An MX host an MTA-STS `enforce` policy rules out: skipped, never connected to, but reported (RFC 8460). */
export interface StsRefusedMx {
  /** The MX host name, as the MX record names it (lower case, no trailing dot). */
  readonly name: string;
  /** The domain whose policy ruled it out (the MX domain looked up). */
  readonly policyDomain: string;
}

export type RoutePlan =
  | {
      readonly kind: "deliver";
      readonly source: RouteSource;
      readonly hops: readonly NextHop[];
      readonly stsRefused?: readonly StsRefusedMx[];
    }
  | { readonly kind: "bounce"; readonly reply: DeliveryReply }
  | { readonly kind: "defer"; readonly reply: DeliveryReply; readonly stsRefused?: readonly StsRefusedMx[] };

const tlsRank: Record<TlsLevel, number> = { none: 0, opportunistic: 1, encrypt: 2, verify: 3 };

export function strictestTls(...levels: (TlsLevel | undefined)[]): TlsLevel {
  let best: TlsLevel = "none";
  for (const level of levels) if (level && tlsRank[level] > tlsRank[best]) best = level;
  return best;
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

const missing = new Set(["ENOTFOUND", "ENODATA"]);
const codeOf = (error: unknown) => String((error as { code?: unknown })?.code ?? "ESERVFAIL");

export interface RouterOptions {
  options: ResolvedOutboundOptions;
  resolver: DnsResolver;
  hooks: HookRunner<OutboundHooks>;
  /** True for an address and port one of our own listeners is bound to. */
  isOwnAddress: (address: string, port: number) => boolean;
  mtaSts: MtaStsPolicies | undefined;
  /** DANE lookups through a validating resolver; undefined when `dane.resolver` is not set. */
  dane?: DanePolicies | undefined;
  log: Logger;
}

export class Router {
  readonly #options: ResolvedOutboundOptions;
  readonly #resolver: DnsResolver;
  readonly #hooks: HookRunner<OutboundHooks>;
  readonly #isOwnAddress: (address: string, port: number) => boolean;
  readonly #mtaSts: MtaStsPolicies | undefined;
  readonly #dane: DanePolicies | undefined;
  readonly #log: Logger;

  constructor(options: RouterOptions) {
    this.#options = options.options;
    this.#resolver = options.resolver;
    this.#hooks = options.hooks;
    this.#isOwnAddress = options.isOwnAddress;
    this.#mtaSts = options.mtaSts;
    this.#dane = options.dane;
    this.#log = options.log;
  }

  async plan(context: RouteContext): Promise<RoutePlan> {
    const plan = await this.#plan(context);
    if (plan.kind !== "deliver") return plan;
    // MX hosts are ordered by preference: from the first that is us on, none may be used.
    const firstOwn = plan.hops.findIndex((hop) => this.#isOwnAddress(hop.address, hop.port));
    if (firstOwn === -1) return plan;
    const ownPriority = plan.hops[firstOwn]!.priority;
    const hops = plan.hops.filter((hop) => hop.priority < ownPriority && !this.#isOwnAddress(hop.address, hop.port));
    if (hops.length > 0) return { ...plan, hops };
    this.#log.error({ domain: context.domain, hop: plan.hops[firstOwn]!.name }, "mail loops back to myself");
    return { kind: "bounce", reply: localReply("5.4.6", `mail for ${context.domain} loops back to myself`) };
  }

  async #plan(context: RouteContext): Promise<RoutePlan> {
    const { domain } = context;
    const { result: decision } = await this.#hooks.first("route", [context], { queueId: context.message.id });
    if (decision) return this.#fromDecision(decision, context);
    const route = this.#options.routes[domain];
    if (route) return this.#toTarget(route, "static", domain);
    if (this.#options.smarthost) return this.#toTarget(this.#options.smarthost, "smarthost", domain);
    const literal = /^\[(?:ipv6:)?([0-9a-f.:]+)\]$/i.exec(domain)?.[1];
    if (literal && isIP(literal)) {
      return {
        kind: "deliver",
        source: "literal",
        hops: [this.#hop({ name: literal, address: literal, port: this.#options.port, priority: 0 }, domain)],
      };
    }
    return this.#viaMx(domain, domain);
  }

  async #fromDecision(decision: RouteDecision, context: RouteContext): Promise<RoutePlan> {
    switch (decision.type) {
      case "mx":
        return this.#viaMx(decision.domain?.toLowerCase() ?? context.domain, context.domain);
      case "relay": {
        const { type: _type, ...target } = decision;
        return this.#toTarget(relayTargetSchema.parse(target), "hook", context.domain);
      }
      case "bounce":
        return { kind: "bounce", reply: localReply(decision.status as `5.${number}.${number}`, decision.text) };
      case "defer":
        return { kind: "defer", reply: localReply(decision.status as `4.${number}.${number}`, decision.text) };
    }
  }

  /** The TLS a hop needs for mail to `domain`: the global level, the domain's, the route's. */
  #hop(
    base: Omit<NextHop, "tls" | "secure"> & { tls?: TlsLevel | undefined; secure?: boolean },
    domain: string,
  ): NextHop {
    return {
      ...base,
      secure: base.secure ?? false,
      tls: strictestTls(base.tls ?? this.#options.tls.level, this.#options.tls.domains[domain]),
    };
  }

  async #addresses(host: string): Promise<{ addresses: string[]; failure?: string }> {
    if (isIP(host)) return { addresses: [host] };
    const answers = await Promise.allSettled([this.#resolver.resolve(host, "A"), this.#resolver.resolve(host, "AAAA")]);
    const addresses: string[] = [];
    let failure: string | undefined;
    for (const answer of answers) {
      if (answer.status === "fulfilled") addresses.push(...(answer.value as string[]));
      else if (!missing.has(codeOf(answer.reason))) failure = codeOf(answer.reason);
    }
    return failure ? { addresses, failure } : { addresses };
  }

  async #toTarget(target: RelayTarget, source: RouteSource, domain: string): Promise<RoutePlan> {
    const { addresses, failure } = await this.#addresses(target.host);
    if (addresses.length === 0) {
      return {
        kind: "defer",
        reply: localReply("4.4.3", `next hop ${target.host}: no address (${failure ?? "no A/AAAA records"})`),
      };
    }
    // Credentials never go over a connection whose peer is unverified, unless the route says so.
    const tls = target.tls ?? (target.auth ? "verify" : undefined);
    return {
      kind: "deliver",
      source,
      hops: addresses.map((address) =>
        this.#hop(
          { name: target.host, address, port: target.port, secure: target.secure, tls, auth: target.auth, priority: 0 },
          domain,
        ),
      ),
    };
  }

  async #viaMx(mxDomain: string, recipientDomain: string): Promise<RoutePlan> {
    let records: { exchange: string; priority: number }[];
    let source: RouteSource = "mx";
    try {
      records = (await this.#resolver.resolve(mxDomain, "MX")) as { exchange: string; priority: number }[];
    } catch (error) {
      const code = codeOf(error);
      if (code === "ENOTFOUND") {
        return { kind: "bounce", reply: localReply("5.1.2", `domain ${mxDomain} does not exist (NXDOMAIN)`) };
      }
      if (code !== "ENODATA") {
        return { kind: "defer", reply: localReply("4.4.3", `MX lookup for ${mxDomain} failed: ${code}`) };
      }
      records = [];
    }
    const isNull = (record: { exchange: string }) => record.exchange === "" || record.exchange === ".";
    if (records.length > 0 && records.every(isNull)) {
      return {
        kind: "bounce",
        reply: localReply("5.1.10", `domain ${mxDomain} accepts no mail (null MX, RFC 7505)`),
      };
    }
    records = records.filter((record) => !isNull(record));
    if (records.length === 0) {
      // RFC 5321 §5.1: no MX records, so the domain itself is the single, implicit MX.
      source = "implicit-mx";
      records = [{ exchange: mxDomain, priority: 0 }];
    }
    const byPriority = new Map<number, { exchange: string; priority: number }[]>();
    for (const record of records) byPriority.set(record.priority, [...(byPriority.get(record.priority) ?? []), record]);
    const ordered = [...byPriority.keys()]
      .sort((a, b) => a - b)
      .flatMap((priority) => shuffle(byPriority.get(priority)!))
      .slice(0, this.#options.maxMxHosts);

    let policy: Awaited<ReturnType<MtaStsPolicies["lookup"]>> | undefined;
    if (this.#mtaSts && (source === "mx" || source === "implicit-mx")) {
      policy = await this.#mtaSts.lookup(mxDomain);
    }
    const mode = policy && policy.mode !== "none" ? policy.mode : undefined;

    // DANE applies only when the MX answer (or the lack of one) is DNSSEC-secure (RFC 7672 §2.2.1).
    let daneApplies = false;
    if (this.#dane && (source === "mx" || source === "implicit-mx")) {
      try {
        daneApplies = await this.#dane.mxSecure(mxDomain);
      } catch (error) {
        return {
          kind: "defer",
          reply: localReply("4.4.3", `DANE: MX lookup for ${mxDomain} failed (${(error as Error).message})`),
        };
      }
    }
    const daneUnusable: string[] = [];

    const hops: NextHop[] = [];
    let failure: string | undefined;
    const refusedByPolicy: StsRefusedMx[] = [];
    for (const record of ordered) {
      const exchange = record.exchange.replace(/\.$/, "").toLowerCase();
      if (mode && !mxAllowed(exchange, policy!)) {
        if (mode === "enforce") {
          refusedByPolicy.push({ name: exchange, policyDomain: mxDomain });
          this.#log.warn({ domain: mxDomain, mx: exchange }, "MX not listed in the MTA-STS policy (enforce): skipped");
          continue;
        }
        this.#log.warn(
          { domain: mxDomain, mx: exchange },
          "MX not listed in the MTA-STS policy (testing): used anyway",
        );
      }
      const dane: DaneHost | undefined = daneApplies ? await this.#dane!.host(exchange, this.#options.port) : undefined;
      if (dane?.kind === "unusable") {
        // RFC 7672 §2.2: a host whose TLSA answer cannot be had may be under attack: not used.
        daneUnusable.push(dane.reason);
        this.#log.warn({ domain: mxDomain, mx: exchange, reason: dane.reason }, "DANE: MX host skipped");
        continue;
      }
      const found = await this.#addresses(exchange);
      if (found.failure) failure = found.failure;
      for (const address of found.addresses) {
        const hop = this.#hop(
          {
            name: exchange,
            address,
            port: this.#options.port,
            priority: record.priority,
            tls: mode === "enforce" ? "verify" : undefined,
            mtaSts: mode,
          },
          recipientDomain,
        );
        // DANE wins over MTA-STS (RFC 8461 §2) and replaces the CA check with the TLSA match; with
        // no usable record, TLS is still required and a configured "verify" stays.
        hops.push(
          dane?.kind === "dane"
            ? {
                ...hop,
                mtaSts: undefined,
                tls: dane.records.length > 0 ? "encrypt" : strictestTls(hop.tls, "encrypt"),
                dane: { records: dane.records, names: [exchange] },
              }
            : hop,
        );
      }
    }
    // The refused hosts travel with the plan so the attempt reports them as TLS outcomes.
    const stsRefused = refusedByPolicy.length > 0 ? { stsRefused: refusedByPolicy } : {};
    if (hops.length > 0) return { kind: "deliver", source, hops, ...stsRefused };
    if (daneUnusable.length > 0) {
      return {
        kind: "defer",
        reply: localReply("4.7.5", `DANE: no usable MX host of ${mxDomain}: ${daneUnusable.join("; ")}`),
        ...stsRefused,
      };
    }
    if (refusedByPolicy.length > 0 && refusedByPolicy.length === ordered.length) {
      return {
        kind: "defer",
        reply: localReply("4.7.5", `no MX host of ${mxDomain} is allowed by its MTA-STS policy (enforce)`),
        ...stsRefused,
      };
    }
    if (source === "implicit-mx" && !failure) {
      return { kind: "bounce", reply: localReply("5.1.2", `domain ${mxDomain} has no MX and no address records`) };
    }
    return {
      kind: "defer",
      reply: localReply("4.4.3", `no address for the MX hosts of ${mxDomain}${failure ? ` (${failure})` : ""}`),
      ...stsRefused,
    };
  }
}
