// What each plugin was made from: the package and the options its factory got. YAML configs call
// factories here; in TS configs module-hooks.ts wraps the factories of @postern/* packages so the
// calls come through here too. The preflight reads options it knows how to check (a Maildir root,
// relay networks, DKIM key files) without the plugins having to expose them, and a factory that
// refuses its options gets a hint for the usual mistake (a misspelt key).
import { ConfigError, type Plugin } from "@postern/core";
import { misspellingHint } from "./misspelling-hint.ts";

export interface PluginOrigin {
  /** The package (or local module) the factory came from. */
  readonly package: string;
  /** The options as written in the config, before the factory validated them. */
  readonly options: unknown;
}

const origins = new WeakMap<object, PluginOrigin>();

/** This module's URL, for the wrapper modules module-hooks.ts writes. */
export const pluginOptionsRecorderUrl: string = import.meta.url;

function withHint(error: ConfigError, options: unknown): ConfigError {
  const hint = misspellingHint(error, options);
  if (!hint) return error;
  return new ConfigError(error.key, `${error.expected}; ${hint}`, {
    cause: error,
    ...(error.file ? { file: error.file } : {}),
    ...(error.plugin ? { plugin: error.plugin } : {}),
  });
}

/** Calls `make` (a factory call), remembers where its plugin came from, and adds a hint to a ConfigError. */
export function recordPluginOptions(packageName: string, options: unknown, make: () => unknown): unknown {
  let made: unknown;
  try {
    made = make();
  } catch (error) {
    throw error instanceof ConfigError ? withHint(error, options) : error;
  }
  const remember = (plugin: unknown) => {
    if (typeof plugin === "object" && plugin !== null) origins.set(plugin, { package: packageName, options });
    return plugin;
  };
  return made instanceof Promise ? made.then(remember) : remember(made);
}

export function originOf(plugin: Plugin): PluginOrigin | undefined {
  return origins.get(plugin);
}
