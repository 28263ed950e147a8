// Bounces to our SRS addresses: a valid SRS0 address expands to the original sender, a valid SRS1
// to the first forwarder's SRS0 address; a forged or expired one is unknown — and final, so no
// alias or catch-all of the SRS domain can take it (that would make us a relay for forged bounces).
import type { LookupAddress, Resolution, Resolver } from "./resolution.ts";
import { isSrsLocalPart, type Srs } from "./srs.ts";

export function srsResolver(srs: Srs, domain: string): Resolver {
  return {
    name: "srs",
    async resolve(address: LookupAddress): Promise<Resolution> {
      if (address.domain !== domain || !isSrsLocalPart(address.localPart)) return { kind: "unknown" };
      const reversal = srs.reverse(address.original);
      if (reversal.kind === "reversed") return { kind: "expand", addresses: [reversal.address] };
      return { kind: "unknown", reason: reversal.kind === "invalid" ? `srs-${reversal.reason}` : "srs", final: true };
    },
  };
}
