// create-postern — writes a ready Postern site: a package.json (ESM, engines, start/check/test),
// a typed postern.config.ts that listens on loopback and stores mail to Maildir, a tsconfig, a
// test that delivers a message through the configured server, a hardened systemd unit and a
// README. `npm create postern@latest my-mx` runs the command in cli.ts.
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { checkDomain, checkSiteName } from "./names.ts";
import { renderTemplate, type SiteNames } from "./template.ts";

export { SiteOptionError } from "./names.ts";
export type { SiteNames } from "./template.ts";
export { nodeEngines, siteVersions } from "./versions.ts";

export interface CreateSiteOptions {
  /** Where to write the site; created if missing, and must be empty. */
  directory: string;
  /** The site's npm package name; the directory's name when not given. */
  name?: string;
  /** The mail domain to accept mail for (default "example.com"). */
  domain?: string;
  /** The server's host name (default "mx." + the domain). */
  hostname?: string;
}

export interface CreatedSite {
  readonly directory: string;
  readonly names: SiteNames;
  /** The files written, relative to `directory`. */
  readonly files: readonly string[];
}

export class TargetNotEmptyError extends Error {
  readonly code = "CREATE_POSTERN_NOT_EMPTY";
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

export async function createSite(options: CreateSiteOptions): Promise<CreatedSite> {
  const directory = resolve(options.directory);
  const domain = checkDomain("--domain", options.domain ?? "example.com");
  const names: SiteNames = {
    name: checkSiteName(options.name ?? basename(directory)),
    domain,
    hostname: checkDomain("--hostname", options.hostname ?? `mx.${domain}`),
  };
  if (!(await isEmptyOrMissing(directory))) throw new TargetNotEmptyError(directory);
  const files = await renderTemplate(names);
  for (const [path, text] of files) {
    const target = join(directory, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, text, { flag: "wx" });
  }
  return { directory, names, files: [...files.keys()] };
}
