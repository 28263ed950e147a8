// IP addresses and networks on one library (ipaddr.js), for every plugin that matches clients:
// trusted networks, allowlists, DNSBL names, limit and greylist keys. An IPv4-mapped IPv6 address
// (::ffff:192.0.2.1, what a client looks like on a dual-stack listener) is the IPv4 address it
// carries, and a network written in that form covers those IPv4 addresses.
import ipaddr from "ipaddr.js";

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/** The address, IPv4-mapped addresses unwrapped; undefined when it is not an IP address. */
export function parseIpAddress(text: string): IpAddress | undefined {
  const bare = text.trim().replace(/%.*$/, ""); // an IPv6 zone ID (fe80::1%eth0) names an interface
  if (!ipaddr.isValid(bare)) return undefined;
  // ipaddr accepts "1", "0x7f.1" and other inet_aton forms; only dotted quads and IPv6 are addresses here.
  if (!bare.includes(":") && !ipaddr.IPv4.isValidFourPartDecimal(bare)) return undefined;
  return ipaddr.process(bare);
}

export interface IpNetwork {
  /** Normalized: "192.0.2.0/24", "2001:db8::/32", "192.0.2.1/32". */
  readonly text: string;
  readonly address: IpAddress;
  readonly prefix: number;
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

/** "192.0.2.0/24", "2001:db8::/32" or one address; undefined when it is neither. */
export function parseIpNetwork(text: string): IpNetwork | undefined {
  const trimmed = text.trim();
  const [addressText = "", prefixText, ...rest] = trimmed.split("/");
  if (rest.length > 0 || (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText))) return undefined;
  if (addressText.includes("%")) return undefined; // a zone names an interface, not a network
  const parsed = ipaddr.isValid(addressText) ? ipaddr.parse(addressText) : undefined;
  if (!parsed || (parsed.kind() === "ipv4" && !ipaddr.IPv4.isValidFourPartDecimal(addressText))) return undefined;
  const bits = parsed.kind() === "ipv4" ? 32 : 128;
  let prefix = prefixText === undefined ? bits : Number(prefixText);
  if (prefix > bits) return undefined;
  let address: IpAddress = parsed;
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    address = (address as ipaddr.IPv6).toIPv4Address();
    prefix -= 96;
  }
  const network = networkAddress(address, prefix);
  return { text: `${network.toString()}/${prefix}`, address: network, prefix };
}

/** Whether `network` holds `address` (an address of the other family never matches). */
export function networkContains(network: IpNetwork, address: IpAddress): boolean {
  return network.address.kind() === address.kind() && address.match(network.address, network.prefix);
}

/** A list of networks, e.g. from a config: matched in order. */
export class IpNetworkList {
  readonly networks: readonly IpNetwork[];

  constructor(networks: readonly IpNetwork[]) {
    this.networks = networks;
  }

  /** Parses every entry; returns the index of the first that is not a network instead, for the error. */
  static parse(texts: readonly string[]): IpNetworkList | { invalid: number } {
    const networks: IpNetwork[] = [];
    for (const [index, text] of texts.entries()) {
      const network = parseIpNetwork(text);
      if (!network) return { invalid: index };
      networks.push(network);
    }
    return new IpNetworkList(networks);
  }

  /** The first network that holds the address (text or parsed), or undefined. */
  find(address: string | IpAddress): IpNetwork | undefined {
    const parsed = typeof address === "string" ? parseIpAddress(address) : address;
    if (!parsed) return undefined;
    return this.networks.find((network) => networkContains(network, parsed));
  }

  contains(address: string | IpAddress): boolean {
    return this.find(address) !== undefined;
  }
}

/**
 * The network an address counts under: the address itself, or its prefix ("2001:db8:1:2::/64").
 * One IPv6 host usually owns a whole /64, so limits and greylisting group IPv6 clients by one.
 */
export function networkKey(address: IpAddress, prefixes: { readonly ipv4: number; readonly ipv6: number }): string {
  const prefix = address.kind() === "ipv4" ? prefixes.ipv4 : prefixes.ipv6;
  const full = address.kind() === "ipv4" ? 32 : 128;
  if (prefix >= full) return address.toString();
  return `${networkAddress(address, prefix).toString()}/${prefix}`;
}

/**
 * The reversed name of an address under a zone: octet by octet for IPv4 (192.0.2.1 → 1.2.0.192),
 * nibble by nibble for IPv6 (RFC 5782 §2.1, §2.4; "in-addr.arpa" / "ip6.arpa" for PTR).
 */
export function reversedName(address: IpAddress, zone: string): string {
  if (address.kind() === "ipv4") return `${[...address.toByteArray()].reverse().join(".")}.${zone}`;
  const nibbles = address
    .toByteArray()
    .flatMap((byte) => [byte >> 4, byte & 0x0f])
    .map((nibble) => nibble.toString(16));
  return `${nibbles.reverse().join(".")}.${zone}`;
}
