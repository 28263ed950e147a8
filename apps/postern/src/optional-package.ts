// The plugin packages a command works with (@postern/auth for `postern user`, @postern/dkim for
// `postern dkim` …) are not dependencies of `postern`: a site installs the plugins it runs, next
// to its config. A command imports its package when it runs — from the site's node_modules (the
// working directory, or the config's folder once a config is loaded), then from `postern`'s own —
// and a missing one is one line naming the npm install to run.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { PosternError } from "@postern/core";
import { moduleResolve } from "import-meta-resolve";
import { processConditions } from "./plugin-import.ts";

export class MissingPackageError extends PosternError {
  readonly packageName: string;

  constructor(packageName: string, neededBy: string) {
    super(
      "POSTERN_PACKAGE_MISSING",
      `${neededBy} needs ${packageName}; install it next to your config: npm install ${packageName}`,
    );
    this.name = "MissingPackageError";
    this.packageName = packageName;
  }
}

function isNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "ERR_PACKAGE_PATH_NOT_EXPORTED";
}

function resolveFromSite(packageName: string): string | undefined {
  const conditions = new Set(["node", "import", ...processConditions()]);
  try {
    return moduleResolve(packageName, pathToFileURL(join(process.cwd(), "package.json")), conditions).href;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

function resolveFromApp(packageName: string): string | undefined {
  try {
    return import.meta.resolve(packageName);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/**
 * Imports `packageName` for the command `neededBy` ("postern user"). The type parameter is the
 * module's type: `await importOptional<typeof import("@postern/auth")>("@postern/auth", "postern user")`.
 */
export async function importOptional<Module>(packageName: string, neededBy: string): Promise<Module> {
  const url = resolveFromSite(packageName) ?? resolveFromApp(packageName);
  if (!url) throw new MissingPackageError(packageName, neededBy);
  return (await import(url)) as Module;
}
