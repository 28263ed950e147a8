// DNS questions for `postern dns check`, asked of the config's DNS servers (or --dns-server, or the
// system's): each answer as a list, with "no such name" and "no data" meaning an empty list and
// every other failure (timeout, SERVFAIL, refused) an error that says so.
import { promises as dns } from "node:dns";
import { isIP } from "node:net";

export class LookupError extends Error {
  constructor(what: string, code: string) {
    super(`${what}: the DNS lookup failed (${code})`);
    this.name = "LookupError";
  }
}

const empty = new Set(["ENOTFOUND", "ENODATA", "ENONAME", "NOTFOUND", "NODATA"]);

export interface Lookup {
  txt(name: string): Promise<string[]>;
  mx(name: string): Promise<{ exchange: string; priority: number }[]>;
  addresses(name: string): Promise<string[]>;
  ptr(ip: string): Promise<string[]>;
  /** For node:net/https `lookup`: a name to its addresses through these servers. */
  readonly nodeLookup: (
    hostname: string,
    options: { all?: boolean; family?: number } | number,
    callback: (...args: unknown[]) => void,
  ) => void;
}

export function createLookup(servers: readonly string[], timeoutMs: number): Lookup {
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  const ask = async <T>(what: string, question: () => Promise<T[]>): Promise<T[]> => {
    try {
      return await question();
    } catch (error) {
      const code = String((error as NodeJS.ErrnoException).code);
      if (empty.has(code)) return [];
      throw new LookupError(what, code);
    }
  };
  const addresses = async (name: string) => [
    ...(await ask(`A ${name}`, () => resolver.resolve4(name))),
    ...(await ask(`AAAA ${name}`, () => resolver.resolve6(name))),
  ];
  return {
    txt: async (name) => (await ask(`TXT ${name}`, () => resolver.resolveTxt(name))).map((parts) => parts.join("")),
    mx: (name) => ask(`MX ${name}`, () => resolver.resolveMx(name)),
    addresses,
    ptr: (ip) => ask(`PTR ${ip}`, () => resolver.reverse(ip)),
    nodeLookup(hostname, options, callback) {
      const all = typeof options === "object" && options.all === true;
      const literal = isIP(hostname);
      const found = literal ? Promise.resolve([hostname]) : addresses(hostname);
      found.then(
        (list) => {
          if (list.length === 0) {
            callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }));
          } else if (all) {
            callback(
              null,
              list.map((address) => ({ address, family: isIP(address) })),
            );
          } else {
            callback(null, list[0], isIP(list[0]!));
          }
        },
        (error: unknown) => callback(error),
      );
    },
  };
}
