// The triplet greylisting remembers: the client's network (a /24 for IPv4 and a /64 for IPv6 by
// default — a sender's retries often leave from another address of the same farm), the envelope
// sender and the recipient, both in core's comparable form. Stored hashed: a bounded key that
// does not spell out addresses in Redis.
import { createHash } from "node:crypto";
import { addressKey, type IpAddress, networkKey } from "@postern/core";

export interface NetworkPrefixes {
  readonly ipv4: number;
  readonly ipv6: number;
}

export function clientNetwork(address: IpAddress, prefixes: NetworkPrefixes): string {
  return networkKey(address, prefixes);
}

export function tripletKey(network: string, sender: string, recipient: string): string {
  const from = sender === "" ? "<>" : addressKey(sender);
  return createHash("sha256")
    .update(`${network}\0${from}\0${addressKey(recipient)}`)
    .digest("base64url")
    .slice(0, 27);
}
