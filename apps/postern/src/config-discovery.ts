// Which config file `postern` reads: the one named by -c/--config, else the first of the usual
// names found in the working directory, else none (the embedded default applies).
import { existsSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";

/** Looked for in the working directory, in this order. */
export const configFileNames = [
  "postern.config.ts",
  "postern.config.mjs",
  "postern.config.js",
  "postern.yaml",
  "postern.yml",
] as const;

export interface ConfigFileLocation {
  /** Absolute path, for reading and importing. */
  path: string;
  /** How error messages name it: relative to the working directory when it lies inside it. */
  displayName: string;
}

function locate(path: string, cwd: string): ConfigFileLocation {
  const absolute = resolve(cwd, path);
  const fromCwd = relative(cwd, absolute);
  const inside = fromCwd !== "" && !fromCwd.startsWith("..") && !isAbsolute(fromCwd);
  return { path: absolute, displayName: inside ? fromCwd : absolute };
}

export function findConfigFile(cwd: string, explicit?: string): ConfigFileLocation | undefined {
  if (explicit !== undefined) return locate(explicit, cwd);
  const name = configFileNames.find((candidate) => existsSync(join(cwd, candidate)));
  return name ? locate(name, cwd) : undefined;
}
