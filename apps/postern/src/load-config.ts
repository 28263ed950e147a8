// Turns the command line into a validated server config: the config file (named or found in the
// working directory) or the embedded default, checked against core's schema before anything listens.
//
// Relative paths in a config file (a Maildir root, certificates, key files, the spool) mean the
// file's folder, so `postern start -c /etc/postern/postern.yaml` means the same from anywhere: the
// process works in that folder from the moment the file is loaded. Plugins resolve their paths
// when their factory runs, which is why this is a change of directory and not a rewrite of known
// keys: it holds for every plugin, in YAML and TS configs alike.
import { dirname } from "node:path";
import { ConfigError, parseServerConfig, type ServerConfig } from "@postern/core";
import type { ConfigRequest } from "./config-args.ts";
import { type ConfigFileLocation, findConfigFile } from "./config-discovery.ts";
import { ConfigErrors } from "./config-errors.ts";
import { loadConfigFile } from "./config-file.ts";
import { configIssues } from "./config-issues.ts";
import { defaultConfig } from "./default-config.ts";
import { installModuleHooks, setSiteRoot } from "./module-hooks.ts";
import { UsageError } from "./usage-error.ts";

export interface LoadedConfig {
  config: ServerConfig;
  /** The config file as error messages name it, or "embedded default". */
  source: string;
  /** The config file's path as messages name it; undefined for the embedded default. */
  file: string | undefined;
  /** Where the config file is, when there is one. */
  location: ConfigFileLocation | undefined;
  /** The folder relative paths of the config are taken from (and the working directory from now on). */
  directory: string;
  /** What the embedded default does, for the start-up message. */
  summary: string | undefined;
}

/**
 * Core's schema gives a config without listeners `[{ port: 2525 }]` as it is (a zod `.default`
 * is not parsed), so that listener would lack its address, TLS and AUTH settings; written out
 * here, it gets them like any other.
 */
function withDefaultListener(input: unknown): unknown {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return input;
  return "listeners" in input && input.listeners !== undefined ? input : { ...input, listeners: [{ port: 2525 }] };
}

function validate(input: unknown, earlier: readonly ConfigError[], locate: (error: ConfigError) => ConfigError) {
  const complete = withDefaultListener(input);
  const errors = [...earlier, ...configIssues(complete).map(locate)];
  if (errors.length > 0) throw new ConfigErrors(errors);
  return parseServerConfig(complete);
}

/** `fresh`: read the config file again, as a reload does (see loadConfigFile). */
export async function loadConfig(
  request: ConfigRequest,
  cwd: string = process.cwd(),
  options: { fresh?: boolean } = {},
): Promise<LoadedConfig> {
  installModuleHooks();
  const location = findConfigFile(cwd, request.configPath);
  if (!location) {
    const { input, summary } = await defaultConfig({
      cwd,
      domains: request.domains,
      address: request.address,
      port: request.port,
    });
    const config = validate(input, [], (error) => error);
    return { config, source: "embedded default", file: undefined, location, directory: cwd, summary };
  }
  if (request.domains.length > 0 || request.address !== undefined || request.port !== undefined) {
    throw new UsageError(
      `--domain, --listen and --port shape the embedded default; with ${location.displayName}, set domains and listeners in the file`,
    );
  }
  const directory = dirname(location.path);
  try {
    process.chdir(directory);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError("", `cannot read the file (${reason})`, { file: location.displayName, cause: error });
  }
  setSiteRoot(directory);
  const loaded = await loadConfigFile(location, options);
  const config = validate(loaded.input, loaded.errors, loaded.locate);
  return { config, source: location.displayName, file: location.displayName, location, directory, summary: undefined };
}
