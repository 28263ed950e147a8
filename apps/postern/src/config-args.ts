// The command-line options shared by every command that needs the server config (start, check):
// -c/--config picks the file; --domain, --listen and --port shape the embedded default.
import { isIP } from "node:net";
import { UsageError } from "./usage-error.ts";

export const configOptions = {
  config: { type: "string", short: "c" },
  domain: { type: "string", multiple: true },
  listen: { type: "string" },
  port: { type: "string" },
} as const;

export const configOptionsHelp = `  -c, --config <file>   config file (default: the first of postern.config.ts, postern.config.mjs,
                        postern.config.js, postern.yaml, postern.yml in the working directory;
                        without one, the embedded default: see "postern start --help")
  --domain <domain>     embedded default: also accept mail for this domain (repeatable)
  --listen <ip[:port]>  embedded default: listen here instead of 127.0.0.1:2525
  --port <port>         embedded default: listen on this port instead of 2525`;

export interface ConfigRequest {
  configPath: string | undefined;
  domains: string[];
  address: string | undefined;
  port: number | undefined;
}

interface ConfigOptionValues {
  config?: string | undefined;
  domain?: string[] | undefined;
  listen?: string | undefined;
  port?: string | undefined;
}

function parsePort(text: string, option: string): number {
  const port = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) throw new UsageError(`${option}: expected a port number 1–65535 (got "${text}")`);
  return port;
}

/** "127.0.0.1", "127.0.0.1:2526", "[::1]:2526" or "::1". */
function parseListen(text: string): { address: string; port: number | undefined } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed)
    return { address: bracketed[1]!, port: bracketed[2] ? parsePort(bracketed[2], "--listen") : undefined };
  if (isIP(text)) return { address: text, port: undefined };
  const colon = text.lastIndexOf(":");
  if (colon > 0 && isIP(text.slice(0, colon)) === 4) {
    return { address: text.slice(0, colon), port: parsePort(text.slice(colon + 1), "--listen") };
  }
  throw new UsageError(`--listen: expected an IP address with an optional port, e.g. 127.0.0.1:2525 (got "${text}")`);
}

export function configRequestFrom(values: ConfigOptionValues): ConfigRequest {
  // Domains are checked by @postern/recipients, which knows IDNs (see default-config.ts).
  const domains = values.domain ?? [];
  const listen = values.listen === undefined ? undefined : parseListen(values.listen);
  const port = values.port === undefined ? listen?.port : parsePort(values.port, "--port");
  return { configPath: values.config, domains, address: listen?.address, port };
}
