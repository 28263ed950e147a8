// create-postern — writes a ready Postern site: a package.json (ESM, engines, start/check/test),
// a typed postern.config.ts that listens on loopback and stores mail to Maildir, a tsconfig, a
// test that delivers a message through the configured server, a hardened systemd unit and a
// README. `npm create postern@latest my-mx` runs the command in cli.ts.
import { basename, resolve } from "node:path";
import { ensureEmptyTarget, writeFiles } from "create-postern-plugin/scaffold";
import { checkDomain, checkSiteName } from "./names.ts";
import { renderSite, type SiteNames } from "./template.ts";

export { TargetNotEmptyError } from "create-postern-plugin/scaffold";
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

export async function createSite(options: CreateSiteOptions): Promise<CreatedSite> {
  const directory = resolve(options.directory);
  const domain = checkDomain("--domain", options.domain ?? "example.com");
  const names: SiteNames = {
    name: checkSiteName(options.name ?? basename(directory)),
    domain,
    hostname: checkDomain("--hostname", options.hostname ?? `mx.${domain}`),
  };
  await ensureEmptyTarget(directory, "CREATE_POSTERN_NOT_EMPTY");
  const files = await writeFiles(directory, await renderSite(names));
  return { directory, names, files };
}
