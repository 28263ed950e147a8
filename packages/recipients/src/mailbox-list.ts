// A fixed list of mailboxes, from the options: the smallest backend, and the reference the shared
// backend suite holds the others to.
import { addressKey } from "@postern/core";
import type { Resolver } from "./resolution.ts";

export function mailboxList(addresses: readonly string[]): Resolver {
  const mailboxes = new Set(addresses.map((address) => addressKey(address)));
  return {
    name: "mailboxes",
    async resolve(address) {
      return mailboxes.has(address.address) ? { kind: "mailbox", mailbox: address.address } : { kind: "unknown" };
    },
  };
}
