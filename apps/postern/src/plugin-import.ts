// Imports a plugin package named in a YAML config. The package is looked up from the config file's
// directory first (an operator installs extra plugins next to their config), then from this app's
// own dependencies (core, recipients, store-maildir; a site installs every other plugin).
// Relative paths ("./my-plugin.js") are taken from the config file's directory only.
import { pathToFileURL } from "node:url";
import { moduleResolve } from "import-meta-resolve";

export type PluginModule = Record<string, unknown>;

/** Export conditions this process was started with (--conditions / -C), e.g. dev-source in the repo. */
export function processConditions(): string[] {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/).filter(Boolean)];
  const conditions: string[] = [];
  for (const [index, arg] of args.entries()) {
    if (arg.startsWith("--conditions=")) conditions.push(arg.slice("--conditions=".length));
    else if ((arg === "--conditions" || arg === "-C") && args[index + 1]) conditions.push(args[index + 1]!);
    else if (arg.startsWith("-C") && arg.length > 2) conditions.push(arg.slice(2));
  }
  return conditions;
}

function isNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "ERR_PACKAGE_PATH_NOT_EXPORTED";
}

export function isRelativeSpecifier(specifier: string): boolean {
  return specifier.startsWith("./") || specifier.startsWith("../") || specifier.startsWith("/");
}

/** The module URL the specifier names, or undefined when neither place has it. */
export function resolvePlugin(specifier: string, configFile: string): string | undefined {
  const conditions = new Set(["node", "import", ...processConditions()]);
  try {
    return moduleResolve(specifier, pathToFileURL(configFile), conditions).href;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  if (isRelativeSpecifier(specifier)) return undefined;
  try {
    return import.meta.resolve(specifier);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export async function importPlugin(url: string): Promise<PluginModule> {
  return (await import(url)) as PluginModule;
}
