// MTA-STS (RFC 8461) on mailauth's helpers: discovery through core's resolver, the policy fetched
// over HTTPS, cached in memory and in the queue store (so a restart, or another node sharing
// PostgreSQL, still applies a policy it cannot fetch right now, as §3.3 asks).
import type { DnsResolver, Logger } from "@postern/core";
import type { MTASTSPolicy } from "mailauth";
import { getPolicy, validateMx } from "mailauth/lib/mta-sts.js";
import type { QueueStore } from "./queue/store.ts";
import { stsFetchFailure, stsPolicyStrings, type TlsOutcomes } from "./tls-outcome.ts";

export type MtaStsMode = "enforce" | "testing" | "none";

export interface MtaStsOptions {
  resolver: DnsResolver;
  store: QueueStore;
  log: Logger;
  timeoutMs: number;
  recheckMs: number;
  /** Where a policy that could not be fetched or was invalid is reported (TLS reports). */
  tlsOutcomes?: TlsOutcomes | undefined;
}

interface Entry {
  policy: MTASTSPolicy;
  checkedAt: number;
}

/** What gets stored: the policy without the fetch error (an Error does not survive JSON). */
function storable(policy: MTASTSPolicy): MTASTSPolicy {
  const { error: _error, ...rest } = policy as MTASTSPolicy & { error?: unknown };
  return rest;
}

export class MtaStsPolicies {
  readonly #options: MtaStsOptions;
  readonly #memory = new Map<string, Entry>();
  readonly #pending = new Map<string, Promise<MTASTSPolicy>>();

  constructor(options: MtaStsOptions) {
    this.#options = options;
  }

  /** The policy last looked up for `domain`, without a lookup (what a TLS report names). */
  known(domain: string): MTASTSPolicy | undefined {
    return this.#memory.get(domain)?.policy;
  }

  /** The policy in force for `domain` ({ mode: "none" } when it has none). Never throws. */
  lookup(domain: string): Promise<MTASTSPolicy> {
    const entry = this.#memory.get(domain);
    if (entry && Date.now() - entry.checkedAt < this.#options.recheckMs) return Promise.resolve(entry.policy);
    let pending = this.#pending.get(domain);
    if (!pending) {
      pending = this.#refresh(domain, entry?.policy).finally(() => this.#pending.delete(domain));
      this.#pending.set(domain, pending);
    }
    return pending;
  }

  async #refresh(domain: string, inMemory: MTASTSPolicy | undefined): Promise<MTASTSPolicy> {
    const { store, resolver, log } = this.#options;
    const key = `mta-sts:${domain}`;
    const known = inMemory ?? ((await store.loadCached(key).catch(() => undefined)) as MTASTSPolicy | undefined);
    const result = await getPolicy(domain, known ?? null, {
      resolver: (name: string, rrtype: string) => resolver.resolve(name, rrtype),
      timeout: this.#options.timeoutMs,
    });
    const policy = result.policy;
    if (result.status === "errored") {
      const error = (policy as MTASTSPolicy & { error?: Error }).error;
      log.warn({ domain, mode: policy.mode, err: error?.message }, "MTA-STS policy could not be fetched");
      this.#options.tlsOutcomes?.record(() => {
        const failure = stsFetchFailure(error);
        return {
          policy: { type: "sts", domain, strings: stsPolicyStrings(known) },
          result: failure.type,
          recipientDomain: domain,
          reasonCode: failure.code,
          detail: error?.message,
        };
      });
    }
    if (result.status === "found" || (result.status === "errored" && policy.id && policy.id !== known?.id)) {
      await store
        .saveCached(key, storable(policy))
        .catch((error: Error) =>
          log.warn({ domain, err: error.message }, "MTA-STS policy not cached in the queue store"),
        );
    }
    this.#memory.set(domain, { policy, checkedAt: Date.now() });
    return policy;
  }
}

/** Whether `mx` may receive mail for a domain with `policy`. */
export function mxAllowed(mx: string, policy: MTASTSPolicy): boolean {
  return validateMx(mx, policy).valid;
}

/** The policy's mx pattern that `mx` matches ("*.example.net"), if one does. */
export function mxPattern(mx: string, policy: MTASTSPolicy): string | undefined {
  const result = validateMx(mx, policy) as { valid: boolean; match?: string };
  if (!result.valid || !result.match) return undefined;
  return policy.mx?.find((pattern) => pattern === result.match || pattern === `*${result.match}`) ?? result.match;
}
