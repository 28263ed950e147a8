// The server `postern start` runs when there is no config file: a plaintext listener on loopback
// port 2525, mail accepted for localhost and every --domain, stored in ./data/maildir. It needs no
// database or other service.
import { hostname } from "node:os";
import { resolve } from "node:path";
import { ConfigError, type Plugin, type ServerConfigInput } from "@postern/core";
import { UsageError } from "./usage-error.ts";

export interface DefaultConfigOptions {
  /** Where ./data/maildir is. */
  cwd: string;
  /** Extra local domains besides localhost. */
  domains: readonly string[];
  address?: string | undefined;
  port?: number | undefined;
}

export const defaultAddress = "127.0.0.1";
export const defaultPort = 2525;

export async function defaultConfig(
  options: DefaultConfigOptions,
): Promise<{ input: ServerConfigInput; summary: string }> {
  // Imported here rather than at the top so `postern check -c file` works without these plugins.
  const { default: recipients } = await import("@postern/recipients");
  const { default: maildir } = await import("@postern/store-maildir");
  const domains = [...new Set(["localhost", ...options.domains.map((domain) => domain.toLowerCase())])];
  const root = resolve(options.cwd, "data/maildir");
  let localDomains: Plugin;
  try {
    localDomains = recipients({ domains });
  } catch (error) {
    // The only input here that came from the operator is --domain.
    if (error instanceof ConfigError) throw new UsageError(`--domain: ${error.expected}`);
    throw error;
  }
  const input: ServerConfigInput = {
    hostname: hostname(),
    listeners: [{ address: options.address ?? defaultAddress, port: options.port ?? defaultPort, tls: "none" }],
    plugins: [localDomains, maildir({ root })],
  };
  return { input, summary: `embedded default: accepting mail for ${domains.join(", ")}; storing it in ${root}` };
}
