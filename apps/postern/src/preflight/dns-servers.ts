// The DNS servers of the config, asked one question each: SPF, DKIM, DMARC, DNSBL and outbound MX
// lookups all go through them, and a server that never answers turns every one of those into a
// temporary error. Any answer (even "no such name") means the server works; only silence or a
// refusal is an error. The system's resolvers (an empty dns.servers) are not probed: which ones
// they are is the machine's business, and tests must never reach real DNS.
import { promises as dns } from "node:dns";
import type { ServerConfig } from "@postern/core";
import { error, type Finding, warning } from "./finding.ts";

/** Answers that mean "the server is there and said something". */
const answered = new Set(["ENOTFOUND", "ENODATA", "ENONAME", "NOTFOUND", "NODATA"]);

async function probe(server: string, index: number, timeoutMs: number): Promise<Finding[]> {
  const key = `dns.servers.${index}`;
  const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 1 });
  try {
    resolver.setServers([server]);
  } catch {
    return [
      error(
        key,
        `expected an IP address with an optional port, e.g. 127.0.0.1 or [::1]:53 (got ${JSON.stringify(server)})`,
      ),
    ];
  }
  try {
    await resolver.resolveNs(".");
    return [];
  } catch (cause) {
    const code = String((cause as NodeJS.ErrnoException).code);
    if (answered.has(code)) return [];
    if (code === "ESERVFAIL")
      return [warning(key, `${server} answers SERVFAIL for the root zone; is it cut off from the internet?`)];
    const what =
      code === "ETIMEOUT" ? `no answer within ${timeoutMs} ms` : code === "ECONNREFUSED" ? "connection refused" : code;
    return [error(key, `${server} does not answer DNS queries (${what})`)];
  }
}

export async function checkDnsServers(config: ServerConfig): Promise<Finding[]> {
  const results = await Promise.all(
    config.dns.servers.map((server, index) => probe(server, index, config.dns.timeoutMs)),
  );
  return results.flat();
}
