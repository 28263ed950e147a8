// An HTTPS report destination (RFC 8460 §5.1): the gzip'd report POSTed as
// application/tlsrpt+gzip, the server's certificate verified, no redirects followed; any 2xx
// answer means it was taken.
import { request } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { getCACertificates, rootCertificates } from "node:tls";

export interface PostOptions {
  readonly timeoutMs: number;
  /** CA certificates trusted besides Node's own. */
  readonly ca?: string | readonly string[] | undefined;
  /** The host's addresses through the server's resolver (its DNS servers, not the system's). */
  readonly resolve?: ((hostname: string) => Promise<string[]>) | undefined;
}

/** A `lookup` for node:https that asks `resolve` (Node passes `all: true` for happy eyeballs). */
function lookupWith(resolve: (hostname: string) => Promise<string[]>): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (addresses) => {
        if (addresses.length === 0) {
          callback(Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" }), "", 0);
          return;
        }
        const entries = addresses.map((address) => ({ address, family: isIP(address) }));
        if ((options as { all?: boolean }).all)
          (callback as unknown as (e: null, a: typeof entries) => void)(null, entries);
        else callback(null, entries[0]!.address, entries[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, "", 0),
    );
  };
}

function trusted(extra: PostOptions["ca"]): string[] | undefined {
  if (!extra) return undefined;
  // `ca` replaces Node's trust store for a request; keep the default CAs next to the extra ones.
  const defaults = typeof getCACertificates === "function" ? getCACertificates("default") : [...rootCertificates];
  return [...defaults, ...(typeof extra === "string" ? [extra] : extra)];
}

/** POSTs the report; resolves with the HTTP status, rejects when there was no answer in time. */
export function postReport(url: string, gzipped: Buffer, options: PostOptions): Promise<number> {
  const ca = trusted(options.ca);
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method: "POST",
        headers: { "content-type": "application/tlsrpt+gzip", "content-length": String(gzipped.length) },
        agent: false,
        rejectUnauthorized: true,
        ...(ca ? { ca } : {}),
        ...(options.resolve ? { lookup: lookupWith(options.resolve) } : {}),
        timeout: options.timeoutMs,
      },
      (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode ?? 0));
        response.on("error", reject);
      },
    );
    outgoing.on("timeout", () => outgoing.destroy(new Error(`no answer from ${url} within ${options.timeoutMs} ms`)));
    outgoing.on("error", reject);
    outgoing.end(gzipped);
  });
}
