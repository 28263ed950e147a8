// The MTA-STS policy file (RFC 8461 §3.2): fetched over HTTPS with a certificate valid for the
// policy host, parsed into its fields, and matched against the MX hosts it must cover.
import { request } from "node:https";
import type { Lookup } from "./lookup.ts";

export interface MtaStsPolicy {
  readonly version: string | undefined;
  readonly mode: string | undefined;
  readonly mx: readonly string[];
  readonly maxAge: number | undefined;
}

/** The largest policy we read; real ones are a few hundred bytes (RFC 8461 suggests 64 KB as a limit). */
const maxPolicyBytes = 64 * 1024;

export function parseMtaStsPolicy(text: string): MtaStsPolicy {
  const mx: string[] = [];
  let version: string | undefined;
  let mode: string | undefined;
  let maxAge: number | undefined;
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === "version") version = value;
    else if (key === "mode") mode = value;
    else if (key === "mx") mx.push(value.toLowerCase());
    else if (key === "max_age" && /^\d{1,10}$/.test(value)) maxAge = Number(value);
  }
  return { version, mode, mx, maxAge };
}

/** Whether an MX host matches a policy's mx pattern ("mx.example.com" or "*.example.com", one label). */
export function mxMatches(pattern: string, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  if (!pattern.startsWith("*.")) return pattern === name;
  const rest = name.slice(name.indexOf(".") + 1);
  return name.includes(".") && rest === pattern.slice(2);
}

export interface FetchedPolicy {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly text: string;
}

export function fetchPolicy(
  url: string,
  lookup: Lookup,
  options: { ca?: string; timeoutMs: number },
): Promise<FetchedPolicy> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "GET",
        lookup: lookup.nodeLookup as never,
        ...(options.ca ? { ca: options.ca } : {}),
        timeout: options.timeoutMs,
        headers: { "user-agent": "postern-dns-check" },
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxPolicyBytes) {
            req.destroy(new Error(`the policy is larger than ${maxPolicyBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            contentType: response.headers["content-type"],
            text: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        response.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
