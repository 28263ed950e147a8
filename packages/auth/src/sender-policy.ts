// Which sender addresses an authenticated user may use, in MAIL FROM and in the From header: the
// entries the operator listed for the user, plus the default rule (their own address by default).
// Entries are addresses ("alice@example.com"), whole domains ("@example.com") or "*" (any).
import { domainToASCII } from "node:url";

export type DefaultSenders = "address" | "domain" | "none";

export interface SenderPolicyOptions {
  senders: Readonly<Record<string, readonly string[]>>;
  defaultSenders: DefaultSenders;
  /** "+" lets alice@example.com send as alice+news@example.com too. */
  subaddressSeparator: string | undefined;
}

export interface SenderPolicy {
  owns(user: string, address: string): boolean;
}

interface Parsed {
  local: string;
  domain: string;
}

function parseAddress(address: string): Parsed | undefined {
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return undefined;
  const rawDomain = address.slice(at + 1).toLowerCase();
  const domain = rawDomain.startsWith("[") ? rawDomain : domainToASCII(rawDomain) || rawDomain;
  return { local: address.slice(0, at).toLowerCase(), domain };
}

export function senderPolicy(options: SenderPolicyOptions): SenderPolicy {
  const listed = new Map<string, readonly string[]>();
  for (const [user, entries] of Object.entries(options.senders)) listed.set(user.toLowerCase(), entries);

  const defaultsFor = (user: string): string[] => {
    if (options.defaultSenders === "none" || !parseAddress(user)) return [];
    return options.defaultSenders === "address" ? [user] : [`@${parseAddress(user)!.domain}`];
  };

  const matches = (entry: string, address: Parsed, base: string): boolean => {
    if (entry === "*") return true;
    if (entry.startsWith("@")) return parseAddress(`x${entry}`)!.domain === address.domain;
    const owned = parseAddress(entry);
    if (!owned || owned.domain !== address.domain) return false;
    return owned.local === address.local || owned.local === base;
  };

  return {
    owns(user, candidate) {
      const address = parseAddress(candidate);
      if (!address) return false;
      const separator = options.subaddressSeparator;
      const cut = separator ? address.local.indexOf(separator) : -1;
      const base = cut > 0 ? address.local.slice(0, cut) : address.local;
      const name = user.toLowerCase();
      const entries = [...(listed.get(name) ?? []), ...defaultsFor(name)];
      return entries.some((entry) => matches(entry, address, base));
    },
  };
}
