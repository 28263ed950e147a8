// Turns the command line into a validated server config: the config file (named or found in the
// working directory) or the embedded default, checked against core's schema before anything listens.
import { ConfigError, parseServerConfig, type ServerConfig } from "@postern/core";
import type { ConfigRequest } from "./config-args.ts";
import { findConfigFile } from "./config-discovery.ts";
import { loadConfigFile } from "./config-file.ts";
import { rejectUnknownKeys } from "./config-keys.ts";
import { defaultConfig } from "./default-config.ts";
import { UsageError } from "./usage-error.ts";

export interface LoadedConfig {
  config: ServerConfig;
  /** The config file as error messages name it, or "embedded default". */
  source: string;
  /** The config file's path as messages name it; undefined for the embedded default. */
  file: string | undefined;
  /** What the embedded default does, for the start-up message. */
  summary: string | undefined;
}

function validate(input: unknown): ServerConfig {
  rejectUnknownKeys(input);
  return parseServerConfig(input);
}

export async function loadConfig(request: ConfigRequest, cwd: string = process.cwd()): Promise<LoadedConfig> {
  const location = findConfigFile(cwd, request.configPath);
  if (!location) {
    const { input, summary } = await defaultConfig({
      cwd,
      domains: request.domains,
      address: request.address,
      port: request.port,
    });
    return { config: validate(input), source: "embedded default", file: undefined, summary };
  }
  if (request.domains.length > 0 || request.address !== undefined || request.port !== undefined) {
    throw new UsageError(
      `--domain, --listen and --port shape the embedded default; with ${location.displayName}, set domains and listeners in the file`,
    );
  }
  const loaded = await loadConfigFile(location);
  try {
    const config = validate(loaded.input);
    return { config, source: location.displayName, file: location.displayName, summary: undefined };
  } catch (error) {
    if (error instanceof ConfigError) throw loaded.locate(error);
    throw error;
  }
}
