// create-postern-plugin — writes a ready Postern plugin package: a factory with validated options,
// a hook, a test over real SMTP with @postern/testing, a README, tsconfig, build and exports that
// pass publint. `npm create postern-plugin@latest my-plugin` runs the command in cli.ts.
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { type PluginNames, pluginNames } from "./names.ts";
import { renderTemplate } from "./template.ts";

export type { PluginNames } from "./names.ts";
export { factoryName, PluginNameError, pluginNames } from "./names.ts";
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

export class TargetNotEmptyError extends Error {
  readonly code = "CREATE_POSTERN_PLUGIN_NOT_EMPTY";
  constructor(directory: string) {
    super(`${directory} is not empty; choose a new folder so nothing of yours is overwritten`);
    this.name = "TargetNotEmptyError";
  }
}

async function isEmptyOrMissing(directory: string): Promise<boolean> {
  try {
    return (await readdir(directory)).length === 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw error;
  }
}

export async function createPlugin(options: CreatePluginOptions): Promise<CreatedPlugin> {
  const directory = resolve(options.directory);
  const names = pluginNames(options.name ?? basename(directory));
  if (!(await isEmptyOrMissing(directory))) throw new TargetNotEmptyError(directory);
  const files = await renderTemplate(names);
  for (const [path, text] of files) {
    const target = join(directory, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, text, { flag: "wx" });
  }
  return { directory, names, files: [...files.keys()] };
}
