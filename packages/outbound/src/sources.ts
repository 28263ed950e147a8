// Source-address pools: which of this host's addresses a delivery connects from, and the EHLO
// name it gives there, by sender domain, recipient domain or next-hop host. The first pool that
// matches is used; its addresses take turns (per address family: an IPv4 address cannot reach an
// IPv6 host).
import { isIPv6 } from "node:net";
import type { ResolvedOutboundOptions } from "./options.ts";
import { domainOf } from "./queue/store.ts";
import { nameMatches } from "./throttle.ts";

type Pool = ResolvedOutboundOptions["sources"][number];

export interface SourceChoice {
  readonly localAddress: string;
  /** Undefined: the plugin's heloName. */
  readonly heloName: string | undefined;
}

export type SourcePick =
  /** No pool matches: the system picks the address, the plugin's heloName is sent. */
  | { readonly kind: "default" }
  | { readonly kind: "source"; readonly source: SourceChoice }
  /** A pool matches but has no address of the host's family: this host is not used. */
  | { readonly kind: "none"; readonly pool: number; readonly family: 4 | 6 };

export class SourcePools {
  readonly #pools: readonly Pool[];
  /** Next address to use, per pool and family. */
  readonly #turn = new Map<string, number>();

  constructor(pools: readonly Pool[]) {
    this.#pools = pools;
  }

  get empty(): boolean {
    return this.#pools.length === 0;
  }

  /** The source for one connection attempt from `sender` to `host` (address `address`) for `domain`. */
  pick(sender: string, domain: string, host: string, address: string): SourcePick {
    const senderDomain = domainOf(sender);
    const index = this.#pools.findIndex(
      ({ match }) =>
        (match.senderDomain === undefined || (senderDomain !== "" && nameMatches(match.senderDomain, senderDomain))) &&
        nameMatches(match.domain, domain) &&
        nameMatches(match.mx, host),
    );
    if (index === -1) return { kind: "default" };
    const family = isIPv6(address) ? 6 : 4;
    const candidates = this.#pools[index]!.addresses.filter((entry) => (isIPv6(entry.address) ? 6 : 4) === family);
    if (candidates.length === 0) return { kind: "none", pool: index, family };
    const key = `${index}/${family}`;
    const turn = this.#turn.get(key) ?? 0;
    this.#turn.set(key, (turn + 1) % candidates.length);
    const chosen = candidates[turn % candidates.length]!;
    return { kind: "source", source: { localAddress: chosen.address, heloName: chosen.ehlo } };
  }
}
