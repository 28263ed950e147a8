// The template is a real site under ../template written for "my-mx" serving example.com from
// mx.example.com, installed in /srv/my-mx. Generating a site copies it with those replaced and
// writes a package.json built here, so the versions come from one place (versions.ts).
import { fileURLToPath } from "node:url";
import { renderTemplate } from "create-postern-plugin/scaffold";
import { nodeEngines, siteVersions } from "./versions.ts";

/** The template folder; the same relative place from src/ (in the repo) and dist/ (published). */
export const templateDir: string = fileURLToPath(new URL("../template/", import.meta.url));

export interface SiteNames {
  /** The npm package name of the site, also its folder name under /srv. */
  readonly name: string;
  /** The mail domain it accepts mail for. */
  readonly domain: string;
  /** The server's host name: its HELO name and MX target. */
  readonly hostname: string;
}

/** The template's own names, longest first (the host name contains the domain). */
const placeholders = /mx\.example\.com|example\.com|my-mx/g;

function substitute(text: string, names: SiteNames): string {
  // One pass, so a name that contains another placeholder ("my-mx.org") is not replaced twice.
  const values: Record<string, string> = {
    "mx.example.com": names.hostname,
    "example.com": names.domain,
    "my-mx": names.name,
  };
  return text.replace(placeholders, (placeholder) => values[placeholder]!);
}

export function siteManifest(names: SiteNames): Record<string, unknown> {
  return {
    name: names.name,
    version: "0.1.0",
    private: true,
    description: `The mail server for ${names.domain}, on Postern`,
    type: "module",
    engines: { node: nodeEngines },
    scripts: {
      // exec: npm runs scripts under sh, which would not pass a SIGTERM for npm on to the server.
      start: "exec postern start",
      check: "postern check --strict",
      test: "postern check --strict && node --test test/*.test.ts",
      typecheck: "tsc",
    },
    dependencies: {
      postern: siteVersions.postern,
      "@postern/core": siteVersions["@postern/core"],
      "@postern/recipients": siteVersions["@postern/recipients"],
      "@postern/store-maildir": siteVersions["@postern/store-maildir"],
    },
    devDependencies: {
      "@postern/testing": siteVersions["@postern/testing"],
      "@types/node": siteVersions["@types/node"],
      typescript: siteVersions.typescript,
    },
  };
}

/** Every file of the generated site: path relative to its folder → contents. */
export async function renderSite(names: SiteNames): Promise<Map<string, string>> {
  const files = await renderTemplate({
    dir: templateDir,
    // npm drops dot files such as .gitignore from published packages; the template ships them as _name.
    renamed: { _gitignore: ".gitignore", _dockerignore: ".dockerignore" },
    substitute: (text) => substitute(text, names),
  });
  files.set("package.json", `${JSON.stringify(siteManifest(names), null, 2)}\n`);
  return files;
}
