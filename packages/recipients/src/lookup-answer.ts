// How a table or directory answer becomes a resolution, the same for every backend: no row is
// "unknown"; in a mailbox lookup the values name the mailbox (none: the address itself), in an
// alias lookup they are the addresses (a value may hold several, comma-separated, as Postfix
// tables allow).
import { DirectoryError } from "./directory-error.ts";
import { type LookupAddress, lookupAddress, type Resolution } from "./resolution.ts";

export type LookupResultKind = "mailbox" | "aliases";

export function answerFrom(
  backend: string,
  address: LookupAddress,
  found: boolean,
  values: readonly string[],
  result: LookupResultKind,
): Resolution {
  if (!found) return { kind: "unknown" };
  const cleaned = values.map((value) => value.trim()).filter((value) => value !== "");
  if (result === "aliases") {
    const addresses = cleaned.flatMap((value) => value.split(",").map((part) => part.trim())).filter(Boolean);
    return addresses.length > 0 ? { kind: "expand", addresses } : { kind: "unknown" };
  }
  const mailboxes = new Set(cleaned.map((value) => lookupAddress(value)?.address ?? value.toLowerCase()));
  if (mailboxes.size === 0) return { kind: "mailbox", mailbox: address.address };
  if (mailboxes.size === 1) return { kind: "mailbox", mailbox: [...mailboxes][0]! };
  // Several mailboxes, one of them the address itself (a user entry with several mail values).
  if (mailboxes.has(address.address)) return { kind: "mailbox", mailbox: address.address };
  return {
    kind: "tempfail",
    cause: new DirectoryError(
      "RECIPIENTS_LOOKUP_AMBIGUOUS",
      backend,
      `${address.address} names ${mailboxes.size} mailboxes (${[...mailboxes].join(", ")}); fix the directory`,
    ),
  };
}
