// Client addresses as limit keys. One IPv6 host usually owns a whole /64 (and can pick any address
// in it per connection), so IPv6 clients are grouped by a prefix; IPv4 clients stand alone unless
// an ipv4Prefix says otherwise. IPv4-mapped IPv6 addresses (::ffff:192.0.2.1, what a client looks
// like on a dual-stack listener) count as the IPv4 address they carry.
import ipaddr from "ipaddr.js";

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

export interface Network {
  /** The range as written in keys and logs, normalized: "192.0.2.0/24", "2001:db8::/32". */
  readonly text: string;
  readonly range: [IpAddress, number];
}

/** The client's address, IPv4-mapped addresses unwrapped; undefined when it is not an IP address. */
export function parseClientAddress(text: string): IpAddress | undefined {
  const bare = text.replace(/%.*$/, ""); // an IPv6 zone ID (fe80::1%eth0) is not part of the address
  if (!ipaddr.isValid(bare)) return undefined;
  return ipaddr.process(bare);
}

/** "192.0.2.0/24", "2001:db8::/32" or a single address; undefined when invalid. */
export function parseNetwork(text: string): Network | undefined {
  const trimmed = text.trim();
  let range: [IpAddress, number];
  if (ipaddr.isValidCIDR(trimmed)) {
    range = ipaddr.parseCIDR(trimmed);
  } else if (ipaddr.isValid(trimmed)) {
    const address = ipaddr.parse(trimmed);
    range = [address, address.kind() === "ipv4" ? 32 : 128];
  } else {
    return undefined;
  }
  // An IPv4-mapped IPv6 range is written as the IPv4 range it covers, so it matches processed clients.
  if (range[0].kind() === "ipv6" && (range[0] as ipaddr.IPv6).isIPv4MappedAddress() && range[1] >= 96) {
    range = [(range[0] as ipaddr.IPv6).toIPv4Address(), range[1] - 96];
  }
  const network = networkAddress(range[0], range[1]);
  return { text: `${network.toString()}/${range[1]}`, range: [network, range[1]] };
}

/** The first address of the prefix (host bits cleared). */
function networkAddress(address: IpAddress, prefix: number): IpAddress {
  const bytes = address.toByteArray();
  for (let index = 0; index < bytes.length; index++) {
    const keep = Math.max(0, Math.min(8, prefix - index * 8));
    bytes[index] = bytes[index]! & (0xff << (8 - keep)) & 0xff;
  }
  return ipaddr.fromByteArray(bytes);
}

/** The key a client address counts under: the address, or its prefix ("2001:db8:1:2::/64"). */
export function addressKey(address: IpAddress, prefixes: { ipv4: number; ipv6: number }): string {
  const prefix = address.kind() === "ipv4" ? prefixes.ipv4 : prefixes.ipv6;
  const full = address.kind() === "ipv4" ? 32 : 128;
  if (prefix >= full) return address.toString();
  return `${networkAddress(address, prefix).toString()}/${prefix}`;
}

/** The first network of `networks` that holds `address`, or undefined. */
export function findNetwork(address: IpAddress, networks: readonly Network[]): Network | undefined {
  return networks.find((network) => network.range[0].kind() === address.kind() && address.match(network.range));
}
