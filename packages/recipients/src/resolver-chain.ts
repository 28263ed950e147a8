// Resolvers asked in order, the first answer that is not "unknown" winning (as Postfix asks
// virtual_alias_maps, then virtual_mailbox_maps), and the subaddress rule every one of them follows.
import { splitSubaddress } from "@postern/core";
import { DirectoryError } from "./directory-error.ts";
import { type LookupAddress, lookupAddress, type Resolution, type Resolver } from "./resolution.ts";

/** Asks each resolver in turn; a throw is a tempfail (fail closed), never an "unknown". */
export function firstAnswer(resolvers: readonly Resolver[]): (address: LookupAddress) => Promise<Resolution> {
  return async (address) => {
    let last: Resolution = { kind: "unknown" };
    for (const resolver of resolvers) {
      let answer: Resolution;
      try {
        answer = await resolver.resolve(address);
      } catch (error) {
        return { kind: "tempfail", cause: DirectoryError.from(resolver.name, error) };
      }
      if (answer.kind !== "unknown" || answer.final) return answer;
      last = answer;
    }
    return last;
  };
}

/**
 * `alice+news@example.com` is looked up as written first (an operator may alias it on its own),
 * then as `alice@example.com`; a mailbox found the second way carries the detail `news`.
 */
export function withSubaddress(resolver: Resolver, delimiters: string): Resolver {
  if (delimiters === "") return resolver;
  return {
    name: resolver.name,
    async resolve(address) {
      const first = await resolver.resolve(address);
      if (first.kind !== "unknown" || first.final) return first;
      // A quoted local part is a name as a whole; only a dot-atom has a subaddress.
      if (address.localPart.startsWith('"')) return first;
      const { base, detail } = splitSubaddress(
        address.original.slice(0, address.original.lastIndexOf("@")),
        delimiters,
      );
      const baseAddress = detail === undefined ? undefined : lookupAddress(`${base}@${address.domain}`);
      if (detail === undefined || baseAddress === undefined) return first;
      const second = await resolver.resolve(baseAddress);
      return second.kind === "mailbox" ? { ...second, detail } : second;
    },
    ...(resolver.close ? { close: () => resolver.close!() } : {}),
  };
}
