// @postern/dnsbl — DNS blocklists (RFC 5782). At connect the client's address is looked up in every
// configured list at once, through the server's resolver, while the client reads the greeting; at
// RCPT TO the weighted score decides; every message records the result in a header field, and the
// result is on `session.results` under the typed `dnsblResult` key for other plugins.
import {
  type DnsResolver,
  IpNetworkList,
  type Logger,
  type Plugin,
  parseIpAddress,
  parseIpNetwork,
  parseOptions,
  type ResultKey,
  resultKey,
  type Session,
} from "@postern/core";
import { headerValue } from "./header.ts";
import { lookUpClient } from "./lookup.ts";
import { type DnsblOptions, dnsblOptionsSchema } from "./options.ts";
import { verdictFor } from "./policy.ts";
import type { DnsblResult } from "./result.ts";

export type { DnsblOptions, DnsblZone } from "./options.ts";
export type { DnsblResult, DnsblZoneResult } from "./result.ts";

/** The connection's DNSBL result (on `session.results`), set once the lookups finished. */
export const dnsblResult: ResultKey<DnsblResult> = resultKey<DnsblResult>("dnsbl");

const pluginName = "@postern/dnsbl";

export default function dnsbl(options: DnsblOptions): Plugin {
  const resolved = parseOptions(dnsblOptionsSchema, options, pluginName);
  const allowlist = new IpNetworkList(resolved.allowlist.map((text) => parseIpNetwork(text)!));
  const headerName = resolved.header;
  let resolver: DnsResolver | undefined;
  let hostname = "localhost";
  /** One lookup per connection, started at connect and awaited at RCPT TO. */
  const lookups = new WeakMap<Session, Promise<DnsblResult | undefined>>();

  const lookUp = async (session: Session, log: Logger): Promise<DnsblResult | undefined> => {
    const address = parseIpAddress(session.remoteAddress);
    if (!address) return undefined; // not an IP client; nothing a DNSBL could list
    if (!resolver) throw new Error(`${pluginName} was used before setup() gave it the server's resolver`);
    const result: DnsblResult = allowlist.contains(address)
      ? { ip: address.toString(), status: "allowlisted", score: 0, threshold: resolved.threshold, zones: [] }
      : await lookUpClient(resolver, address, resolved.zones, resolved.threshold);
    session.results.set(dnsblResult, result);
    if (result.status === "listed")
      log.info({ dnsbl: result }, `client ${result.ip} is listed (score ${result.score})`);
    if (result.status === "error") log.warn({ dnsbl: result }, `blocklist lookup failed for ${result.ip}`);
    return result;
  };

  const resultFor = (session: Session, log: Logger): Promise<DnsblResult | undefined> => {
    let lookup = lookups.get(session);
    if (!lookup) {
      lookup = lookUp(session, log);
      lookups.set(session, lookup);
      // Awaited at RCPT; until then a failure must not surface as an unhandled rejection.
      lookup.catch(() => undefined);
    }
    return lookup;
  };

  return {
    name: pluginName,
    setup(server) {
      resolver = server.resolver;
      hostname = server.hostname;
    },
    hooks: {
      connect(session, { log }) {
        void resultFor(session, log);
      },
      rcptTo: {
        // Before recipient plugins, which would otherwise claim the recipient first.
        order: "pre",
        async handler(transaction, recipient, { log }) {
          const result = await resultFor(transaction.session, log);
          if (!result) return undefined;
          return verdictFor(resolved, result, {
            recipient: recipient.address,
            authenticated: transaction.session.user !== undefined,
          });
        },
      },
      async data(transaction, message, { log }) {
        if (headerName === false) return undefined;
        const result = await resultFor(transaction.session, log);
        if (!result) return undefined;
        // A field of this name from the sender would look like ours to the filters downstream.
        const lower = headerName.toLowerCase();
        message.removeHeader((field) => field.name.toLowerCase() === lower);
        message.prepend(headerName, headerValue(hostname, result));
        return undefined;
      },
    },
  } satisfies Plugin;
}
