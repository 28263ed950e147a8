// Reads one config file into raw server settings (not yet validated): a .ts/.mjs/.js module that
// default-exports defineConfig({...}), or a YAML file. Every problem comes out as a ConfigError
// naming the file; `locate` places later validation errors in the same file.
import { access, constants, readFile } from "node:fs/promises";
import { extname } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "@postern/core";
import type { ConfigFileLocation } from "./config-discovery.ts";
import { withLine } from "./config-error-location.ts";
import { readYamlConfig } from "./yaml-config.ts";

export interface LoadedConfigFile {
  input: unknown;
  /** Problems found while reading (YAML: every plugin entry that could not be made). */
  errors: ConfigError[];
  /** The error (whose key is relative to the config's top) located in this file. */
  locate(error: ConfigError): ConfigError;
}

const moduleExtensions = new Set([".ts", ".mts", ".mjs", ".js"]);
const yamlExtensions = new Set([".yaml", ".yml"]);

function firstLine(text: string): string {
  return text.split("\n", 1)[0]!.trim();
}

/** Node's "Cannot find package 'x' imported from …" names the package; say what to install. */
function missingPackage(error: unknown): string | undefined {
  if ((error as { code?: unknown }).code !== "ERR_MODULE_NOT_FOUND") return undefined;
  return /Cannot find package '([^']+)'/.exec((error as Error).message)?.[1];
}

/** Counts reloads: a new query makes Node evaluate the config module again instead of its cached copy. */
let reloadCount = 0;

async function loadModuleConfig(location: ConfigFileLocation, fresh: boolean): Promise<LoadedConfigFile> {
  const file = location.displayName;
  let module: { default?: unknown };
  const url = pathToFileURL(location.path);
  if (fresh) url.searchParams.set("reload", String(++reloadCount));
  try {
    module = (await import(url.href)) as { default?: unknown };
  } catch (error) {
    // A plugin factory called inside the config refused its options: the key names the plugin.
    if (error instanceof ConfigError) throw error.inFile(file);
    const missing = missingPackage(error);
    if (missing) {
      throw new ConfigError(
        "",
        `cannot find package "${missing}"; install it next to ${file} (npm install ${missing})`,
        {
          file,
          cause: error,
        },
      );
    }
    throw new ConfigError("", `cannot load the file: ${firstLine((error as Error).message)}`, { file, cause: error });
  }
  if (module.default === undefined) {
    throw new ConfigError("", "expected a default export: export default defineConfig({ … })", { file });
  }
  return { input: module.default, errors: [], locate: (error) => error.inFile(file) };
}

function unreadable(file: string, error: unknown): ConfigError {
  const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  return new ConfigError("", `cannot read the file (${reason})`, { file, cause: error });
}

/**
 * `fresh`: read the file again (a reload) — a module config is evaluated anew; the modules it
 * imports stay as first loaded.
 */
export async function loadConfigFile(
  location: ConfigFileLocation,
  options: { fresh?: boolean } = {},
): Promise<LoadedConfigFile> {
  const file = location.displayName;
  const extension = extname(location.path).toLowerCase();
  if (!moduleExtensions.has(extension) && !yamlExtensions.has(extension)) {
    throw new ConfigError("", "expected a .ts, .mjs, .js, .yaml or .yml config file", { file });
  }
  try {
    await access(location.path, constants.R_OK);
  } catch (error) {
    throw unreadable(file, error);
  }
  if (moduleExtensions.has(extension)) return loadModuleConfig(location, options.fresh ?? false);
  let text: string;
  try {
    text = await readFile(location.path, "utf8");
  } catch (error) {
    throw unreadable(file, error);
  }
  const yaml = await readYamlConfig(text, location);
  return {
    input: yaml.input,
    errors: yaml.errors,
    locate: (error) => withLine(error.inFile(file), yaml.lineOf(error.key)),
  };
}
