// create-postern-plugin — writes a ready Postern plugin package: a factory with validated options,
// a hook, a test over real SMTP with @postern/testing, a README, tsconfig, build and exports that
// pass publint. `npm create postern-plugin@latest my-plugin` runs the command in cli.ts.
import { basename, resolve } from "node:path";
import { type PluginNames, pluginNames } from "./names.ts";
import { ensureEmptyTarget, writeFiles } from "./scaffold.ts";
import { renderPackage } from "./template.ts";

export type { PluginNames } from "./names.ts";
export { factoryName, PluginNameError, pluginNames } from "./names.ts";
export { TargetNotEmptyError } from "./scaffold.ts";
export { templateVersions } from "./versions.ts";

export interface CreatePluginOptions {
  /** Where to write the package; created if missing, and must be empty. */
  directory: string;
  /** The npm package name; the directory's name when not given. */
  name?: string;
}

export interface CreatedPlugin {
  readonly directory: string;
  readonly names: PluginNames;
  /** The files written, relative to `directory`. */
  readonly files: readonly string[];
}

export async function createPlugin(options: CreatePluginOptions): Promise<CreatedPlugin> {
  const directory = resolve(options.directory);
  const names = pluginNames(options.name ?? basename(directory));
  await ensureEmptyTarget(directory);
  const files = await writeFiles(directory, await renderPackage(names));
  return { directory, names, files };
}
