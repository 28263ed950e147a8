// The connecting client's address as a DNSBL sees it, and the allowlist of addresses never looked
// up. IPv4-mapped IPv6 addresses (::ffff:192.0.2.1, what a client looks like on a dual-stack
// listener) are the IPv4 address they carry: that is the address the blocklists list.
import ipaddr from "ipaddr.js";

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;
export type IpRange = [IpAddress, number];

/** The client's address, unwrapped; undefined when it is not an IP address. */
export function parseClientAddress(text: string): IpAddress | undefined {
  const bare = text.replace(/%.*$/, ""); // an IPv6 zone ID (fe80::1%eth0) is not part of the address
  return ipaddr.isValid(bare) ? ipaddr.process(bare) : undefined;
}

/** "192.0.2.0/24", "2001:db8::/32" or one address; undefined when it is neither. */
export function parseRange(text: string): IpRange | undefined {
  const trimmed = text.trim();
  let range: IpRange;
  if (ipaddr.isValidCIDR(trimmed)) range = ipaddr.parseCIDR(trimmed);
  else if (ipaddr.isValid(trimmed)) {
    const address = ipaddr.parse(trimmed);
    range = [address, address.kind() === "ipv4" ? 32 : 128];
  } else return undefined;
  // Written as IPv4-mapped IPv6, the range covers IPv4 clients, which are compared unwrapped.
  if (range[0].kind() === "ipv6" && (range[0] as ipaddr.IPv6).isIPv4MappedAddress() && range[1] >= 96) {
    range = [(range[0] as ipaddr.IPv6).toIPv4Address(), range[1] - 96];
  }
  return range;
}

export function inRanges(address: IpAddress, ranges: readonly IpRange[]): boolean {
  return ranges.some((range) => range[0].kind() === address.kind() && address.match(range));
}

/**
 * The name to query under a zone: the address reversed, octet by octet for IPv4
 * (192.0.2.1 → 1.2.0.192.zone) and nibble by nibble for IPv6 (RFC 5782 §2.1, §2.4).
 */
export function queryName(address: IpAddress, zone: string): string {
  if (address.kind() === "ipv4") return `${[...address.toByteArray()].reverse().join(".")}.${zone}`;
  const nibbles = address
    .toByteArray()
    .flatMap((byte) => [byte >> 4, byte & 0x0f])
    .map((nibble) => nibble.toString(16));
  return `${nibbles.reverse().join(".")}.${zone}`;
}
