// Trusted networks as a node:net BlockList. A BlockList matches IPv4 rules against IPv4-mapped
// IPv6 addresses too (::ffff:10.1.2.3), which is what a client looks like on a dual-stack listener.
import { BlockList, isIP } from "node:net";

export interface Network {
  address: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}

/** Parses "10.0.0.0/8", "2001:db8::/32" or a single address; undefined when invalid. */
export function parseNetwork(text: string): Network | undefined {
  const [address = "", prefixText, ...rest] = text.trim().split("/");
  if (rest.length > 0) return undefined;
  // Zone IDs (fe80::1%eth0) name an interface, not a network: refused rather than half-matched.
  const version = address.includes("%") ? 0 : isIP(address);
  if (version === 0) return undefined;
  const bits = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return undefined;
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

export function networkList(networks: readonly Network[]): (address: string) => boolean {
  const list = new BlockList();
  for (const network of networks) list.addSubnet(network.address, network.prefix, network.family);
  return (address) => {
    const bare = address.replace(/%.*$/, ""); // drop an IPv6 zone ID (fe80::1%eth0)
    const version = isIP(bare);
    if (version === 0) return false;
    return list.check(bare, version === 4 ? "ipv4" : "ipv6");
  };
}
