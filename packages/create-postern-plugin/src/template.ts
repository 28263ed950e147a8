// The template is a real, linted plugin package under ../template whose names are placeholders:
// "postern-plugin-template" (the package name), templatePlugin / TemplatePlugin (identifiers).
// Generating a plugin copies it with those replaced and writes a package.json built here, so the
// dependency versions come from one place (versions.ts).
import { fileURLToPath } from "node:url";
import type { PluginNames } from "./names.ts";
import { nodeEngines, renderTemplate } from "./scaffold.ts";
import { templateVersions } from "./versions.ts";

/** The template folder; the same relative place from src/ (in the repo) and dist/ (published). */
export const templateDir: string = fileURLToPath(new URL("../template/", import.meta.url));

function substitute(text: string, names: PluginNames): string {
  return text
    .replaceAll("postern-plugin-template", names.packageName)
    .replaceAll("templatePlugin", names.factory)
    .replaceAll("TemplatePlugin", names.typePrefix);
}

export function packageManifest(names: PluginNames): Record<string, unknown> {
  return {
    name: names.packageName,
    version: "0.1.0",
    description: "A Postern plugin",
    type: "module",
    license: "MIT",
    keywords: ["postern", "postern-plugin", "smtp"],
    engines: { node: nodeEngines },
    sideEffects: false,
    files: ["dist"],
    exports: {
      ".": {
        types: "./dist/index.d.ts",
        default: "./dist/index.js",
      },
    },
    scripts: {
      build: "tsc -p tsconfig.build.json",
      typecheck: "tsc --noEmit",
      test: "vitest run",
      prepack: "npm run build",
    },
    dependencies: {
      zod: templateVersions.zod,
    },
    peerDependencies: {
      "@postern/core": templateVersions["@postern/core"],
    },
    devDependencies: {
      "@postern/core": templateVersions["@postern/core"],
      "@postern/testing": templateVersions["@postern/testing"],
      "@types/node": templateVersions["@types/node"],
      typescript: templateVersions.typescript,
      vitest: templateVersions.vitest,
    },
  };
}

/** Every file of the generated package: path relative to its folder → contents. */
export async function renderPackage(names: PluginNames): Promise<Map<string, string>> {
  const files = await renderTemplate({
    dir: templateDir,
    // npm drops .gitignore files from published packages, so the template ships it as _gitignore.
    renamed: { _gitignore: ".gitignore" },
    substitute: (text) => substitute(text, names),
  });
  files.set("package.json", `${JSON.stringify(packageManifest(names), null, 2)}\n`);
  return files;
}
