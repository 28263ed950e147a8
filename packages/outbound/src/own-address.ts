// Whether a next hop is this server itself: an MX (or a route) that resolves to one of our
// listeners would hand the message back to us, forever. A listener bound to the wildcard address
// (0.0.0.0, ::) listens on every local interface, so any local address with its port is us.
import { networkInterfaces } from "node:os";
import { parseIpAddress } from "@postern/core";

export interface Listening {
  readonly address: string;
  readonly port: number;
}

const wildcard = new Set(["0.0.0.0", "::", "::0"]);

function localAddresses(): Set<string> {
  const addresses = new Set<string>();
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) {
      const parsed = parseIpAddress(entry.address);
      if (parsed) addresses.add(parsed.toNormalizedString());
    }
  }
  return addresses;
}

/** A test for "this hop is one of our own listeners", from the listeners as they are bound now. */
export function ownAddressTest(listening: () => readonly Listening[]): (address: string, port: number) => boolean {
  let interfaces: Set<string> | undefined;
  return (address, port) => {
    const hop = parseIpAddress(address)?.toNormalizedString();
    if (!hop) return false;
    return listening().some((listener) => {
      if (listener.port !== port) return false;
      if (wildcard.has(listener.address)) {
        interfaces ??= localAddresses();
        return interfaces.has(hop);
      }
      return parseIpAddress(listener.address)?.toNormalizedString() === hop;
    });
  };
}
