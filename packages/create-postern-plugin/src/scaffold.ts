// What both scaffolders do alike, published as "create-postern-plugin/scaffold" so that
// create-postern (the site scaffolder) runs the same code: read a template folder with its names
// replaced, write the result into a new or empty folder without ever overwriting, check an npm
// package name with npm's own rules, and the pieces of a `npm create` command line.
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import validatePackageName from "validate-npm-package-name";

/** The Node versions Postern supports, written into a generated package's `engines`. */
export const nodeEngines = ">=22.19.0";

/** The target folder holds something: nothing is written, so nothing of the user's is overwritten. */
export class TargetNotEmptyError extends Error {
  /** The scaffolder's own code, e.g. "CREATE_POSTERN_PLUGIN_NOT_EMPTY". */
  readonly code: string;
  constructor(directory: string, code = "CREATE_POSTERN_PLUGIN_NOT_EMPTY") {
    super(`${directory} is not empty; choose a new folder so nothing of yours is overwritten`);
    this.name = "TargetNotEmptyError";
    this.code = code;
  }
}

/** Why npm would refuse `name` for a new package (one line), or undefined when it would take it. */
export function packageNameProblem(name: string): string | undefined {
  const verdict = validatePackageName(name);
  if (verdict.validForNewPackages) return undefined;
  const problems = [...(verdict.errors ?? []), ...(verdict.warnings ?? [])];
  return `"${name}" is not a valid npm package name: ${problems.join("; ")}`;
}

export interface Template {
  /** The template folder: a real package or site whose names are placeholders. */
  readonly dir: string;
  /** Files shipped under another name because npm drops them from packages (`_gitignore` → `.gitignore`). */
  readonly renamed: Readonly<Record<string, string>>;
  /** A file's text with the placeholders replaced by the generated package's names. */
  substitute(text: string): string;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join("/"))
    .sort();
}

/** Every file of the template, renamed and substituted: path relative to its folder → contents. */
export async function renderTemplate(template: Template): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const path of await listFiles(template.dir)) {
    const text = await readFile(join(template.dir, path), "utf8");
    files.set(template.renamed[path] ?? path, template.substitute(text));
  }
  return files;
}

async function isEmptyOrMissing(directory: string): Promise<boolean> {
  try {
    return (await readdir(directory)).length === 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw error;
  }
}

/** Throws `new TargetNotEmptyError(directory, code)` unless the folder is missing or empty. */
export async function ensureEmptyTarget(directory: string, code?: string): Promise<void> {
  if (!(await isEmptyOrMissing(directory))) throw new TargetNotEmptyError(directory, code);
}

/** Writes each file under `directory` (folders made as needed); an existing file is never overwritten. */
export async function writeFiles(directory: string, files: ReadonlyMap<string, string>): Promise<string[]> {
  for (const [path, text] of files) {
    const target = join(directory, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, text, { flag: "wx" });
  }
  return [...files.keys()];
}

/** node:util's parseArgs over `argv`, a mistake on the command line returned instead of thrown. */
export function parseCommandLine<Config extends ParseArgsConfig>(
  argv: string[],
  config: Config,
): ReturnType<typeof parseArgs<Config>> | Error {
  try {
    return parseArgs<Config>({ ...config, args: argv });
  } catch (error) {
    return error as Error;
  }
}

/** How to name a folder to the user: relative to where they are, absolute when it is outside. */
export function shownPath(directory: string): string {
  const fromHere = relative(process.cwd(), directory) || ".";
  return fromHere.startsWith("..") ? directory : fromHere;
}

/** Runs a command's main with the arguments after the script: its result is the exit code, a crash prints with the command's name. */
export function runCommand(command: string, main: (argv: string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`${command}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
