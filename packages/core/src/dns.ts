// The DNS resolver every plugin gets: configured servers, a deadline per lookup, and a small
// cache. `resolve(name, rrtype)` has the shape of dns.promises.resolve, which is what mailauth
// takes, and failures keep Node's codes (ENOTFOUND / ENODATA drive SPF's void-lookup count;
// ETIMEOUT / ESERVFAIL become temperror).
import { promises as dnsPromises } from "node:dns";
import { PosternError } from "./errors.ts";

export interface DnsOptions {
  /** Servers as "ip" or "ip:port"; the system's when empty. */
  servers?: readonly string[];
  /** Deadline for one lookup, retries included. */
  timeoutMs?: number;
  /** How long answers (and NXDOMAIN / NODATA) are reused. 0 disables the cache. */
  cacheTtlMs?: number;
  /** Most entries kept; the oldest go first. */
  cacheSize?: number;
}

export interface DnsResolver {
  // biome-ignore lint/suspicious/noExplicitAny: mirrors dns.promises.resolve, whose answer type depends on rrtype
  resolve(name: string, rrtype?: string): Promise<any>;
  reverse(ip: string): Promise<string[]>;
}

/** A failed lookup; `code` keeps Node's (ENOTFOUND, ENODATA, ETIMEOUT, ESERVFAIL), which mailauth reads. */
export class DnsError extends PosternError {
  readonly hostname: string;
  constructor(code: string, hostname: string, rrtype: string) {
    super(code, `query ${rrtype} ${hostname} failed: ${code}`);
    this.hostname = hostname;
  }
}

const cacheableFailures = new Set(["ENOTFOUND", "ENODATA"]);

interface CacheEntry {
  expires: number;
  answer: Promise<unknown>;
}

export function createResolver(options: DnsOptions = {}): DnsResolver {
  const timeoutMs = options.timeoutMs ?? 5000;
  const ttl = options.cacheTtlMs ?? 60_000;
  const cacheSize = options.cacheSize ?? 10_000;
  // Node's own timeout is per attempt; two attempts fit inside our deadline.
  const resolver = new dnsPromises.Resolver({ timeout: Math.max(1, Math.floor(timeoutMs / 2)), tries: 2 });
  if (options.servers && options.servers.length > 0) resolver.setServers([...options.servers]);
  const cache = new Map<string, CacheEntry>();

  const withDeadline = <T>(lookup: Promise<T>, name: string, rrtype: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DnsError("ETIMEOUT", name, rrtype)), timeoutMs);
      lookup.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          reject(new DnsError(String(error.code ?? "ESERVFAIL"), name, rrtype));
        },
      );
    });

  const cached = (key: string, lookup: () => Promise<unknown>, name: string, rrtype: string) => {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.expires > now) return hit.answer;
    const answer = withDeadline(lookup(), name, rrtype);
    if (ttl > 0) {
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string);
      cache.set(key, { expires: now + ttl, answer });
      answer.catch((error: DnsError) => {
        if (!cacheableFailures.has(error.code)) cache.delete(key);
      });
    }
    return answer;
  };

  return {
    resolve(name: string, rrtype = "A") {
      const type = rrtype.toUpperCase();
      const key = `${type} ${name.toLowerCase()}`;
      return cached(key, () => resolver.resolve(name, type as "A"), name, type);
    },
    reverse(ip: string) {
      return cached(`PTR ${ip}`, () => resolver.reverse(ip), ip, "PTR") as Promise<string[]>;
    },
  };
}
