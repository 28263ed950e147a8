// mailauth takes a resolver shaped like dns.promises.resolve; core's resolver already is one
// (configured servers, deadline, cache) and keeps Node's error codes, which mailauth reads:
// ENOTFOUND / ENODATA count as void lookups, anything else (ETIMEOUT, ESERVFAIL …) is temperror.
import type { DnsResolver } from "@postern/core";

export type MailauthResolver = (name: string, rrtype: string) => Promise<string[][] | string[]>;

const adapters = new WeakMap<DnsResolver, MailauthResolver>();

/** The same function for the same resolver, so mailauth's per-message key caches can be shared. */
export function mailauthResolver(resolver: DnsResolver): MailauthResolver {
  let adapter = adapters.get(resolver);
  if (!adapter) {
    adapter = (name, rrtype) => resolver.resolve(name, rrtype);
    adapters.set(resolver, adapter);
  }
  return adapter;
}
