// Turns a rule's key names into the counter keys of one event: "ip=192.0.2.1",
// "user=alice|recipientDomain=example.com". Values are normalized (lower-case, IDNs as punycode,
// IPv6 grouped by prefix) and escaped so that no client-chosen value can spell another key.
import {
  addressKey,
  type IpAddress,
  type IpNetwork,
  networkContains,
  networkKey,
  normalizeDomain,
  parseIpAddress,
  parseIpNetwork,
  type Session,
} from "@postern/core";
import type { KeyName, ResolvedRule } from "./options.ts";

const findNetwork = (client: IpAddress, networks: readonly IpNetwork[]) =>
  networks.find((network) => networkContains(network, client));

/** What is known about the event being counted. */
export interface KeyFacts {
  readonly session: Session;
  /** The client's address; undefined when it is not an IP address (never on TCP listeners). */
  readonly client: IpAddress | undefined;
  readonly prefixes: { ipv4: number; ipv6: number };
  /** The user to count by: the name tried at AUTH for authFailures, else the authenticated user. */
  readonly user: string | undefined;
  /** MAIL FROM, once given ("" for the null sender). */
  readonly sender?: string | undefined;
  /** The recipients the event is about: the one being added at RCPT, all accepted ones at DATA. */
  readonly recipients?: readonly string[];
}

const recipientKeys: ReadonlySet<KeyName> = new Set(["recipient", "recipientDomain"]);

/** Whether counting by this rule needs a recipient (so it is counted per recipient value). */
export function countsByRecipient(rule: ResolvedRule): boolean {
  return rule.keys.some((key) => recipientKeys.has(key));
}

/** Escapes the characters that build keys ("|", "=") so a value cannot forge another key part. */
function escapeValue(value: string): string {
  return value.replace(/[%|=\s]/g, (char) => encodeURIComponent(char));
}

/** The domain part, normalized as core compares domains (what does not parse is only lower-cased). */
function domainOf(address: string): string {
  const domain = address.slice(address.lastIndexOf("@") + 1);
  return normalizeDomain(domain) ?? domain.toLowerCase();
}

/** The value of one key name, or undefined when the event has none (the rule then does not apply). */
function keyValue(key: Exclude<KeyName, "recipient" | "recipientDomain">, facts: KeyFacts, rule: ResolvedRule) {
  switch (key) {
    case "ip":
      return facts.client ? networkKey(facts.client, facts.prefixes) : undefined;
    case "network":
      return facts.client ? findNetwork(facts.client, rule.networks)?.text : undefined;
    case "helo":
      return facts.session.heloName ?? "(none)";
    case "sender":
      return facts.sender === undefined ? undefined : facts.sender === "" ? "<>" : addressKey(facts.sender);
    case "senderDomain":
      return facts.sender === undefined ? undefined : facts.sender === "" ? "<>" : domainOf(facts.sender);
    case "user":
      return facts.user;
  }
}

/**
 * The counter keys this event counts under for `rule`: one key, one per distinct recipient value
 * when the rule counts by recipient, or none when the rule does not apply (no authenticated user
 * for a "user" key, a client outside the rule's networks).
 */
export function keysFor(rule: ResolvedRule, facts: KeyFacts): string[] {
  if (rule.networks.length > 0 && !(facts.client && findNetwork(facts.client, rule.networks))) return [];
  const parts: string[] = [];
  for (const key of rule.keys) {
    if (recipientKeys.has(key)) continue;
    const value = keyValue(key as Exclude<KeyName, "recipient" | "recipientDomain">, facts, rule);
    if (value === undefined) return [];
    parts.push(`${key}=${escapeValue(value)}`);
  }
  const base = parts.join("|");
  if (!countsByRecipient(rule)) return [base];
  const keys = new Set<string>();
  for (const recipient of facts.recipients ?? []) {
    const recipientParts = rule.keys
      .filter((key) => recipientKeys.has(key))
      .map((key) => `${key}=${escapeValue(key === "recipient" ? addressKey(recipient) : domainOf(recipient))}`);
    keys.add([base, ...recipientParts].filter(Boolean).join("|"));
  }
  return [...keys];
}

/**
 * One "name=value" part of a counter key as an operator types it ("ip=2001:db8::1",
 * "senderDomain=Example.COM"), normalized the way counting writes it; undefined when invalid.
 */
export function normalizeKeyPart(
  part: string,
  prefixes: { ipv4: number; ipv6: number },
  keyNames: readonly KeyName[],
): string | undefined {
  const equals = part.indexOf("=");
  const name = part.slice(0, equals) as KeyName;
  const value = part.slice(equals + 1);
  if (equals < 1 || !keyNames.includes(name) || value === "") return undefined;
  let normalized: string | undefined;
  switch (name) {
    case "ip": {
      const address = value.includes("/") ? undefined : parseIpAddress(value);
      normalized = address ? networkKey(address, prefixes) : parseIpNetwork(value)?.text;
      break;
    }
    case "network":
      normalized = parseIpNetwork(value)?.text;
      break;
    case "sender":
    case "recipient":
      normalized = value === "<>" ? value : addressKey(value);
      break;
    case "senderDomain":
    case "recipientDomain":
      normalized = value === "<>" ? value : domainOf(value);
      break;
    case "helo":
      normalized = value.toLowerCase();
      break;
    case "user":
      normalized = value;
      break;
  }
  return normalized === undefined ? undefined : `${name}=${escapeValue(normalized)}`;
}
