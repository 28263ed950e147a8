// Places a ConfigError in the config file it came from. A plugin factory reports keys under its own
// name ("@postern/spf.fail"); in a config file the operator wrote the option under the plugin's
// entry, so the key is moved there ("plugins.1.options.fail").
import { ConfigError } from "@postern/core";

/** The error's key with the plugin-name prefix that core's parseOptions puts first removed. */
export function keyWithinPlugin(error: ConfigError): string {
  const prefix = error.plugin;
  if (error.key === "(options)") return "";
  if (!prefix) return error.key;
  if (error.key === prefix) return "";
  return error.key.startsWith(`${prefix}.`) ? error.key.slice(prefix.length + 1) : error.key;
}

/** A plugin factory's ConfigError, relocated under `parentKey` (e.g. "plugins.1.options") in `file`. */
export function pluginErrorInFile(error: ConfigError, file: string, parentKey: string): ConfigError {
  const key = keyWithinPlugin(error);
  if (key === "") return new ConfigError(parentKey, error.expected, { file, cause: error });
  return new ConfigError(key, error.expected, { plugin: error.plugin }).inFile(file, parentKey);
}

/** The same error with the line of the offending key appended, when the file format knows it. */
export function withLine(error: ConfigError, line: number | undefined): ConfigError {
  if (line === undefined) return error;
  return new ConfigError(error.key, `${error.expected} (line ${line})`, { file: error.file, cause: error });
}
